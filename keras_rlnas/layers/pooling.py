"""3x3 pooling for ENAS children and supernets."""

import contextlib
import threading

import keras
from keras import layers, ops


def halved(size):
    """Output size of a stride-2 "same" reduction: ceil(size / 2)."""
    return None if size is None else -(-size // 2)


_pooling_state = threading.local()


@contextlib.contextmanager
def max_pool_gradient_recomputed():
    """Context in which `Pool3x3("max")` recomputes its output for its gradient.

    Supernets trace their train step in it: inside a `tf.switch_case` the
    pooling and its gradient sit in different functions, where oneDNN cannot
    pair them (its fast max-pool gradient needs the forward's workspace), and
    the unpaired kernel is about 20 times slower than one extra pooling.
    """
    previous = getattr(_pooling_state, "recompute", False)
    _pooling_state.recompute = True
    try:
        yield
    finally:
        _pooling_state.recompute = previous


def _max_pool(inputs, strides):
    if keras.backend.backend() != "tensorflow" or not getattr(_pooling_state, "recompute", False):
        return ops.max_pool(inputs, 3, strides, padding="same")
    import tensorflow as tf

    @tf.custom_gradient
    def max_pool(x):
        def gradient(upstream):
            with tf.GradientTape() as tape:
                tape.watch(x)
                again = tf.nn.max_pool2d(x, 3, strides, "SAME")
            return tape.gradient(again, x, upstream)

        return tf.nn.max_pool2d(x, 3, strides, "SAME"), gradient

    return max_pool(inputs)


@keras.saving.register_keras_serializable(package="keras_rlnas")
class Pool3x3(layers.Layer):
    """3x3 average or max pooling with "same" padding.

    Average pooling leaves the padding out of the average.

    Args:
        pooling: `"avg"` or `"max"`.
        strides: 1 or 2.

    Example:

    >>> import numpy as np
    >>> tuple(Pool3x3("max", strides=2)(np.zeros((1, 7, 7, 3), "float32")).shape)
    (1, 4, 4, 3)
    """

    def __init__(self, pooling, strides=1, **kwargs):
        super().__init__(**kwargs)
        if pooling not in ("avg", "max"):
            raise ValueError(f"`pooling` must be 'avg' or 'max', got {pooling!r}.")
        self.pooling = pooling
        self.strides = int(strides)

    def call(self, inputs):
        if self.pooling == "avg":
            return ops.average_pool(inputs, 3, self.strides, padding="same")
        return _max_pool(inputs, self.strides)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        if self.strides == 1:
            return tuple(input_shape)
        return (batch, halved(height), halved(width), channels)

    def get_config(self):
        config = super().get_config()
        config.update(pooling=self.pooling, strides=self.strides)
        return config


def make_pooling(pooling, strides, name=None, dtype=None):
    """A 3x3 `"avg"` or `"max"` pooling layer with "same" padding."""
    return Pool3x3(pooling, strides, name=name, dtype=dtype)
