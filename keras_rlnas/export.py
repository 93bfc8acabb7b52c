"""Exporting a found architecture: `.keras`, TensorFlow SavedModel, and an architecture JSON.

The architecture JSON names the search space, the space's options and the
architecture itself, so `build_from_architecture` rebuilds the same network
(same layers, names and weight shapes; fresh weights) without the search.
"""

import json
import os

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from keras_rlnas.spaces import ENASMacro, ENASMicro, VanillaNAS

ARCHITECTURE_FORMAT = "keras_rlnas.architecture/1"
FORMATS = ("keras", "saved_model")

# The names an architecture JSON (and the `keras-rlnas` command) gives the spaces.
SPACES = {"vanilla": VanillaNAS, "enas-macro": ENASMacro, "enas-micro": ENASMicro}


def make_space(space_name, input_shape, num_classes, options):
    """The search space `space_name` of an architecture JSON, built with `options`.

    Args:
        space_name: a key of `SPACES`.
        input_shape, num_classes: the data shape.
        options: the space's other constructor arguments; `input_shape` and
            `num_classes` in it (as in a `get_config()`) are ignored.

    Raises:
        ValueError: naming an unknown `space_name`.
    """
    if space_name not in SPACES:
        raise ValueError(f"Unknown space_name {space_name!r}; expected one of {sorted(SPACES)}.")
    # from_config, not the constructor: a config holds serialised objects (VanillaNAS's curriculum).
    config = {**options, "input_shape": tuple(input_shape), "num_classes": int(num_classes)}
    return SPACES[space_name].from_config(config)


def describe_architecture(space, values):
    """The architecture that hyperparameter `values` choose in `space`, as plain JSON.

    Vanilla: `{"layers": [...]}`, one dict per layer (`space.describe`). ENAS:
    `{"encoding": [...]}` plus `"layers"` (macro: op and skips per layer) or
    `"cells"` (micro: inputs and ops per node of each cell).
    """
    if isinstance(space, VanillaNAS):
        hp = keras_tuner.HyperParameters()
        hp.values = dict(values)
        return {"layers": space.describe(hp)}
    encoding = space.encode(values)
    if isinstance(space, ENASMicro):
        cells = {
            group: [{"inputs": [a, b], "ops": [space.OPS[op_a], space.OPS[op_b]]} for (a, op_a), (b, op_b) in nodes]
            for group, nodes in space.parse(encoding).items()
        }
        return {"encoding": encoding.tolist(), "cells": cells}
    ops, skips = space.parse(encoding)
    layers = [{"op": space.OPS[op], "skips": list(s)} for op, s in zip(ops, skips)]
    return {"encoding": encoding.tolist(), "layers": layers}


def build_architecture(space, architecture):
    """The (uncompiled, freshly initialised) Keras model of a `describe_architecture` JSON."""
    if isinstance(space, VanillaNAS):
        return space.build_model(architecture["layers"], compile=False)
    return space.build_child(np.asarray(architecture["encoding"], np.int32), compile=False)


def architecture_record(space_name, space, space_options, values, input_shape, num_classes, **extra):
    """The JSON description of an architecture of a registered space.

    Args:
        space_name: a key of `SPACES`: `"vanilla"`, `"enas-macro"` or `"enas-micro"`.
        space: the HyperModel the architecture belongs to.
        space_options: the space's constructor options (JSON), as the model was built;
            `build_from_architecture` passes them to the space's class, whose
            defaults fill in the rest.
        values: the architecture's hyperparameter values.
        input_shape, num_classes: the space's data shape.
        **extra: more JSON to keep (scores, data set, ...).

    Returns:
        A dict: `format`, `space`, `input_shape`, `num_classes`, `space_options`,
        `hyperparameters`, `architecture` and the extras.
    """
    if space_name not in SPACES:
        raise ValueError(f"Unknown space_name {space_name!r}; expected one of {sorted(SPACES)}.")
    return {
        "format": ARCHITECTURE_FORMAT,
        "space": space_name,
        "input_shape": [int(d) for d in input_shape],
        "num_classes": int(num_classes),
        "space_options": space_options,
        "hyperparameters": {k: _plain(v) for k, v in values.items()},
        "architecture": describe_architecture(space, values),
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
    space = make_space(record["space"], record["input_shape"], record["num_classes"], record["space_options"])
    return build_architecture(space, record["architecture"])


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


def load_model(path, **kwargs):
    """Loads a `.keras` file of a model built from this package's spaces (or any other).

    `keras.saving.load_model` finds the package's layers, optimizer and
    learning-rate schedule only once their modules are imported, which
    `import keras_rlnas` alone does not do (it loads TensorFlow lazily); this
    imports them first.

    Args:
        path: a `.keras` file, e.g. `DIR/export/model.keras` of `keras-rlnas export`.
        **kwargs: other arguments of `keras.saving.load_model`.

    Returns:
        The `keras.Model`.

    Example:

    ```python
    import keras_rlnas
    model = keras_rlnas.load_model("results/export/model.keras")
    probabilities = model.predict(images)
    ```
    """
    import keras_rlnas.layers  # noqa: F401 - registers the spaces' layers
    import keras_rlnas.training  # noqa: F401 - registers NesterovSGD and CosineWarmRestarts

    return keras.saving.load_model(path, **kwargs)


def load_exported(path, format="keras"):
    """A callable `images -> probabilities` of an exported model (NumPy in, NumPy out)."""
    if format == "keras":
        model = load_model(path)
        return lambda x: np.asarray(model.predict(x, verbose=0))
    if format == "saved_model":
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
