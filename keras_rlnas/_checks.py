"""Argument checks whose errors name the argument and the bad value."""

import argparse
import math
import numbers
from collections.abc import Mapping

import numpy as np


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(name, value, minimum=1):
    """`value` as an int, or a `ValueError` naming `name` and `value`."""
    if not _is_int(value) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def positive_float(name, value):
    """`value` as a float > 0, or a `ValueError` naming `name` and `value`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"`{name}` must be a number > 0, got {value!r}.")
    return float(value)


def non_negative_float(name, value):
    """`value` as a float >= 0, or a `ValueError` naming `name` and `value`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"`{name}` must be a number >= 0, got {value!r}.")
    return float(value)


def fraction(name, value):
    """`value` as a float in [0, 1), or a `ValueError` naming `name` and `value`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1), got {value!r}.")
    return float(value)


def image_shape(name, value):
    """`value` as a `(height, width, channels)` tuple of positive ints."""
    try:
        shape = tuple(value)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3 or not all(_is_int(d) and d > 0 for d in shape):
        raise ValueError(
            f"`{name}` must be (height, width, channels) with positive integers, got {value!r}."
        )
    return tuple(int(d) for d in shape)


def encoding(name, value, length):
    """`value` as a 1-D int32 array of `length` entries."""
    array = np.asarray(value)
    if array.shape != (length,) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"`{name}` must be a vector of {length} integers, got {value!r} "
            f"(shape {array.shape}, dtype {array.dtype})."
        )
    return array.astype(np.int32)


def values_of(architecture):
    """The `{name: value}` mapping of a `keras_tuner.HyperParameters` or a mapping."""
    if isinstance(architecture, Mapping):
        return architecture
    values = getattr(architecture, "values", None)
    if not isinstance(values, Mapping):
        raise TypeError(
            "Expected a keras_tuner.HyperParameters or a mapping of hyperparameter values, "
            f"got {architecture!r}."
        )
    return values


def lookup(values, name):
    """`values[name]`, or a `KeyError` that names the missing hyperparameter."""
    if name not in values:
        raise KeyError(f"The architecture has no value for hyperparameter {name!r}.")
    return values[name]


def command_line_number(kind, minimum, strict):
    """An argparse `type`: `kind(text)` at least `minimum` (above it if `strict`).

    Example:

    >>> at_least_one = command_line_number(int, 0, strict=True)
    >>> at_least_one("3")
    3
    >>> at_least_one("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be > 0, got '0'
    >>> command_line_number(float, 0.0, strict=True)("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a finite number, got 'nan'
    """

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum}, got {text!r}")
        return value

    return parse
