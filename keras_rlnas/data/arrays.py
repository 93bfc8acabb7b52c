"""Checks of a user's `(images, labels)` arrays against the space whose children train on them.

Shared by `ENASTuner.search` and the final training (`keras_rlnas.retrain`),
so both accept and refuse the same data with the same words.
"""

import numpy as np


def describe_shape(shape):
    return "x".join(str(d) for d in shape)


def batch_layout(space):
    """`(count, height, width, channels)` for an image space, else `(count, <the input's shape>)`."""
    if len(space.input_shape) == 3:
        return "(count, height, width, channels)"
    return "(count, " + ", ".join(str(d) for d in space.input_shape) + ")"


def check_images_shape(space, shape, what):
    if tuple(shape) != tuple(space.input_shape):
        raise ValueError(
            f"The {what} images are {describe_shape(shape)} but the space was built for {describe_shape(space.input_shape)}."
        )


def check_labels(space, labels, what):
    if labels.size and (np.min(labels) < 0 or np.max(labels) >= space.num_classes):
        bad = labels[(labels < 0) | (labels >= space.num_classes)]
        raise ValueError(
            f"The {what} labels must be class indices in [0, {space.num_classes}) for a space built for "
            f"{space.num_classes} classes; found {bad.size} outside, e.g. {bad.flat[0].item()!r}."
        )


def check_arrays(space, x, y, what):
    """`(x, y)` as arrays a child of `space` trains on, or a `ValueError` saying what is wrong.

    Grey images without a channel axis get one; labels of shape `(n, 1)` or
    whole floats become integer class indices.

    Args:
        space: anything with `input_shape` and `num_classes` (every space of
            this package, a `ChoiceSpace`).
        x, y: the images and their integer labels.
        what: `"training"` or `"validation"`, for the messages.

    Example:

    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> space = SimpleNamespace(input_shape=(4, 4, 1), num_classes=3)
    >>> x, y = check_arrays(space, np.zeros((2, 4, 4)), np.array([[0.0], [2.0]]), "training")
    >>> x.shape, y.tolist()
    ((2, 4, 4, 1), [0, 2])
    """
    if x is None or y is None:
        raise ValueError(f"The {what} data needs images `x` and labels `y` (or `x` a dataset of batches).")
    if isinstance(x, dict):
        raise ValueError(f"The {what} images must be one array (the model has one input), got a dict with keys {sorted(x)}.")
    x, y = np.asarray(x), np.asarray(y)
    rank = len(space.input_shape) + 1
    if rank == 4 and x.ndim == 3 and space.input_shape[-1] == 1:
        x = x[..., None]  # Grey images without a channel axis, as keras.datasets gives them.
    if x.ndim != rank:
        raise ValueError(f"The {what} images must be a {batch_layout(space)} array, got shape {x.shape}.")
    check_images_shape(space, x.shape[1:], what)
    if len(x) == 0:
        raise ValueError(f"The {what} data has no images.")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"The {what} labels must be integer class indices, one per image; got shape {y.shape}.")
    if len(y) != len(x):
        raise ValueError(f"The {what} data has {len(x)} images but {len(y)} labels; they must pair up.")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(y == np.round(y)):
            raise ValueError(f"The {what} labels must be integer class indices, got dtype {y.dtype}.")
        y = y.astype("int64")
    check_labels(space, y, what)
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise ValueError(f"The {what} images must be finite numbers (dtype {x.dtype}).")
    return x, y
