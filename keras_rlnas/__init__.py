"""keras-rlnas: reinforcement-learning neural architecture search for Keras 3.

Public API:
    - `RLSearch`: a `keras_tuner.RandomSearch` replacement driven by a controller.
    - `MedianStoppingRule`: stops an `RLSearch` trial that falls behind the finished ones.
    - `ControllerOracle`: the oracle behind it, usable with any Keras Tuner tuner.
    - `Controller`, `Decision`, `Sample`: the REINFORCE-trained LSTM policy.
    - `DecisionMap`: how a Keras Tuner space becomes controller decisions.
    - `ENASTuner`: ENAS, one shared-weight supernet trained while the controller learns.
    - `LayerChoice`, `InputChoice`: a search space in a user's own Keras model,
      searched with weight sharing (`ENASTuner`) or by any Keras Tuner tuner.
    - `VanillaNAS`, `ENASMacro`, `ENASMicro`: NAS search spaces (HyperModels).
    - `datasets` (also `data`): image data sets with the papers' preprocessing.
    - `rewards`: reward presets.
    - `load_model`: loads a saved or exported `.keras` model of these spaces.

The names that need TensorFlow load on first use, so that `keras-rlnas`
(`keras_rlnas.cli`) answers a usage error without loading it.
"""

import importlib
import sys

from keras_rlnas import data, rewards

# `keras_rlnas.datasets` is the name users look for; the package is `data`.
datasets = data
sys.modules[f"{__name__}.datasets"] = data

__version__ = "0.1.0"

_LAZY = {
    "Controller": "keras_rlnas.controller",
    "ControllerOracle": "keras_rlnas.oracle",
    "Decision": "keras_rlnas.controller",
    "DecisionMap": "keras_rlnas.decision_map",
    "ENASMacro": "keras_rlnas.spaces",
    "ENASMicro": "keras_rlnas.spaces",
    "ENASTuner": "keras_rlnas.tuners",
    "InputChoice": "keras_rlnas.layers",
    "LayerChoice": "keras_rlnas.layers",
    "MedianStoppingRule": "keras_rlnas.tuners",
    "RLSearch": "keras_rlnas.tuners",
    "Sample": "keras_rlnas.controller",
    "VanillaNAS": "keras_rlnas.spaces",
    "load_model": "keras_rlnas.export",
    "spaces": None,
}

__all__ = [
    "Controller",
    "ControllerOracle",
    "Decision",
    "DecisionMap",
    "ENASMacro",
    "ENASMicro",
    "ENASTuner",
    "InputChoice",
    "LayerChoice",
    "MedianStoppingRule",
    "RLSearch",
    "Sample",
    "VanillaNAS",
    "data",
    "datasets",
    "load_model",
    "rewards",
    "spaces",
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _LAZY[name]
    value = importlib.import_module(f"{__name__}.{name}") if module is None else getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})
