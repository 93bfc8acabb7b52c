"""Export round trips: `.keras`, SavedModel served by `tf.saved_model.load`, architecture JSON."""

import json
import subprocess
import sys

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from keras_rlnas import export
from keras_rlnas.cli import recipes


@pytest.fixture(scope="module")
def trained():
    """A small vanilla child with skips and strides, trained a few steps so BN statistics moved."""
    recipe = recipes.get("vanilla")
    options = {"num_layers": 3, "num_filters": [4, 8]}
    space = recipe.make_space((12, 12, 1), 4, options)
    hp = keras_tuner.HyperParameters()
    hp.values = {"layers[1].skip[0]": True, "layers[2].skip[0]": True, "layers[2].skip[1]": True,
                 "layers[1].stride_height": 2, "layers[2].num_filters": 8}
    space.describe(hp)  # fills in the values not set above
    values = dict(hp.values)
    model = recipe.build(space, recipe.architecture(space, values))
    model.compile("sgd", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 12, 12, 1)).astype("float32")
    model.fit(x, rng.integers(0, 4, 32), epochs=2, batch_size=16, verbose=0)
    record = export.architecture_record("vanilla", space, space.get_config(), values, (12, 12, 1), 4, test_accuracy=0.5)
    return model, record, x[:8]


def test_keras_file_round_trip(tmp_path, trained):
    model, _, x = trained
    path = export.export_model(model, str(tmp_path / "model.keras"), "keras")
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert export.max_prediction_difference(model, path, "keras", x) < 1e-6


def test_saved_model_serves_the_same_predictions(tmp_path, trained):
    model, _, x = trained
    path = export.export_model(model, str(tmp_path / "saved_model"), "saved_model")
    served = tf.saved_model.load(path)
    np.testing.assert_allclose(served.serve(tf.constant(x)).numpy(), model.predict(x, verbose=0), atol=1e-5)


def test_architecture_json_rebuilds_the_same_model(tmp_path, trained):
    model, record, x = trained
    path = export.save_architecture(record, str(tmp_path / "architecture.json"))
    saved = json.loads(open(path).read())
    assert saved["space"] == "vanilla" and saved["test_accuracy"] == 0.5
    assert saved["architecture"]["layers"][2]["inputs"] == [0, 1]
    rebuilt = export.build_from_architecture(path)
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in model.weights]
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("name", ["enas-macro", "enas-micro"])
def test_enas_architecture_json_rebuilds_the_same_child(tmp_path, name):
    options = {"num_layers": 3, "filters": 4} if name == "enas-macro" else {"num_cells": 1, "num_nodes": 2, "filters": 4}
    space = export.make_space(name, (8, 8, 1), 3, options)
    values = space.decode(space.random_encoding(2))
    record = export.architecture_record(name, space, options, values, (8, 8, 1), 3)
    original = export.build_architecture(space, record["architecture"])
    rebuilt = export.build_from_architecture(export.save_architecture(record, str(tmp_path / "a.json")))
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in original.weights]
    assert record["architecture"]["encoding"] == space.encode(values).tolist()


def test_an_enas_child_saved_as_keras_loads_in_a_fresh_process_through_the_package(tmp_path):
    space = export.make_space("enas-macro", (8, 8, 1), 3, {"num_layers": 3, "filters": 4})
    model = space.build_child(space.random_encoding(1))
    path = export.export_model(model, str(tmp_path / "child.keras"), "keras")
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype="float32")
    np.save(tmp_path / "x.npy", x)
    # `import keras_rlnas` leaves TensorFlow and the layers unloaded; keras.saving alone cannot find them.
    script = (
        "import sys, numpy as np, keras_rlnas\n"
        "model = keras_rlnas.load_model(sys.argv[1])\n"
        "np.save(sys.argv[2], model.predict(np.load(sys.argv[3]), verbose=0))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script, path, str(tmp_path / "out.npy"), str(tmp_path / "x.npy")],
                            capture_output=True, text=True, timeout=180)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), model.predict(x, verbose=0), atol=1e-6)


def test_bad_export_arguments_name_the_bad_value(tmp_path, trained):
    model, _, _ = trained
    with pytest.raises(ValueError, match="'onnx'"):
        export.export_model(model, str(tmp_path / "m"), "onnx")
    with pytest.raises(ValueError, match="must end in .keras"):
        export.export_model(model, str(tmp_path / "model.h5"), "keras")
    bad = tmp_path / "other.json"
    bad.write_text('{"format": "something/else"}')
    with pytest.raises(ValueError, match="'something/else'"):
        export.build_from_architecture(str(bad))
    with pytest.raises(ValueError, match="space_name 'resnet'"):
        export.make_space("resnet", (8, 8, 1), 3, {})
