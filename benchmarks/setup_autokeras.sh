#!/usr/bin/env bash
# Create the virtualenv in which benchmarks/peers_autokeras.py runs AutoKeras.
#
#   bash benchmarks/setup_autokeras.sh            # creates .venv-autokeras
#   AK_VENV=/path/to/venv bash benchmarks/setup_autokeras.sh
#
# AutoKeras 3.0.0 (the newest release) builds its classification head with
# `layers.Dense(self.shape[-1])`, where the shape comes from NumPy and the unit
# count is a NumPy integer. Keras 3.13 and later reject that
# ("Received an invalid value for `units` ... units=10"); Keras 3.12.0 accepts
# it and is the oldest Keras that TensorFlow 2.21 supports. The pins below are
# therefore the newest AutoKeras on the newest TensorFlow with the last Keras
# it runs on. Keras Tuner imports tensorboard with the TensorFlow backend and
# tensorflow-cpu does not pull it in, so it is pinned too. The data arrive as
# an .npz file, so keras_rlnas is not needed here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AK_VENV:-$here/.venv-autokeras}"
python="${PYTHON:-python3}"

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet \
    "autokeras==3.0.0" \
    "keras==3.12.0" \
    "keras-tuner==1.4.8" \
    "tensorflow-cpu==2.21.0" \
    "tensorboard==2.21.0" \
    "dm-tree" \
    "numpy<2.5"
"$venv/bin/python" - <<'PY'
import autokeras, keras, keras_tuner, tensorflow
print("autokeras", autokeras.__version__, "keras", keras.__version__,
      "keras-tuner", keras_tuner.__version__, "tensorflow", tensorflow.__version__)
PY
