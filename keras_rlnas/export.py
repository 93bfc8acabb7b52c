"""Exporting a found architecture: `.keras`, TensorFlow SavedModel, and an architecture JSON.

The architecture JSON names the search space, the space's options and the
architecture itself, so `build_from_architecture` rebuilds the same network
(same layers, names and weight shapes; fresh weights) without the search.
"""

import json
import os

import numpy as np

from keras_rlnas.reporting import spaces

ARCHITECTURE_FORMAT = "keras_rlnas.architecture/1"
FORMATS = ("keras", "saved_model")


def architecture_record(space_name, space, space_options, values, input_shape, num_classes, **extra):
    """The JSON description of an architecture of a registered space.

    Args:
        space_name: `"vanilla"`, `"enas-macro"` or `"enas-micro"`.
        space: the HyperModel the architecture belongs to.
        space_options: the space's constructor options (JSON), as the model was built.
        values: the architecture's hyperparameter values.
        input_shape, num_classes: the space's data shape.
        **extra: more JSON to keep (scores, data set, ...).

    Returns:
        A dict: `format`, `space`, `input_shape`, `num_classes`, `space_options`,
        `hyperparameters`, `architecture` and the extras.
    """
    entry = spaces.get(space_name)
    return {
        "format": ARCHITECTURE_FORMAT,
        "space": space_name,
        "input_shape": [int(d) for d in input_shape],
        "num_classes": int(num_classes),
        "space_options": space_options,
        "hyperparameters": {k: _plain(v) for k, v in values.items()},
        "architecture": entry.architecture(space, values),
        **extra,
    }


def save_architecture(record, path):
    """Writes an architecture record as indented JSON; returns `path`."""
    with open(path, "w") as f:
        json.dump(record, f, indent=2, default=_plain)
    return path


def load_architecture(path_or_record):
    """An architecture record from a path or a dict, checked.

    Raises:
        ValueError: naming the file when it is not an architecture JSON.
    """
    record = path_or_record
    if not isinstance(record, dict):
        with open(path_or_record) as f:
            record = json.load(f)
    if record.get("format") != ARCHITECTURE_FORMAT:
        raise ValueError(
            f"{path_or_record if not isinstance(path_or_record, dict) else 'The record'} is not a "
            f"keras-rlnas architecture: format {record.get('format')!r}, expected {ARCHITECTURE_FORMAT!r}."
        )
    return record


def build_from_architecture(path_or_record):
    """Rebuilds the (uncompiled, freshly initialised) Keras model of an architecture JSON.

    Example:

    ```python
    model = keras_rlnas.export.build_from_architecture("results/best/architecture.json")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    ```
    """
    record = load_architecture(path_or_record)
    entry = spaces.get(record["space"])
    space = entry.make_space(record["input_shape"], record["num_classes"], record["space_options"])
    return entry.build(space, record["architecture"])


def export_model(model, path, format="keras"):
    """Writes `model` as a `.keras` file or as a TensorFlow SavedModel (`model.export`).

    Args:
        model: a built Keras model.
        path: a `.keras` file, or the SavedModel's directory.
        format: `"keras"` or `"saved_model"`.

    Returns:
        `path`.
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; expected one of {FORMATS}.")
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    if format == "keras":
        if not str(path).endswith(".keras"):
            raise ValueError(f"A Keras model file must end in .keras, got {path!r}.")
        model.save(path)
    else:
        model.export(path, format="tf_saved_model", verbose=False)
    return path


def load_exported(path, format="keras"):
    """A callable `images -> probabilities` of an exported model (NumPy in, NumPy out)."""
    if format == "keras":
        import keras

        model = keras.models.load_model(path)
        return lambda x: np.asarray(model.predict(x, verbose=0))
    if format == "saved_model":
        import tensorflow as tf

        served = tf.saved_model.load(path)
        return lambda x: np.asarray(served.serve(tf.constant(x, tf.float32)))
    raise ValueError(f"Unknown export format {format!r}; expected one of {FORMATS}.")


def max_prediction_difference(model, path, format, x):
    """Largest absolute difference between `model`'s predictions on `x` and the exported model's."""
    expected = np.asarray(model.predict(x, verbose=0))
    return float(np.max(np.abs(load_exported(path, format)(x) - expected)))


def _plain(value):
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value
