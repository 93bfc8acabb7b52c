"""Batch normalisation for shared weights: fused, with freezable and recalibrated moving statistics."""

import contextlib
import threading

import keras
from keras import layers, ops

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

_statistics_flags = threading.local()


@contextlib.contextmanager
def _flag_set(name):
    previous = getattr(_statistics_flags, name, False)
    setattr(_statistics_flags, name, True)
    try:
        yield
    finally:
        setattr(_statistics_flags, name, previous)


@contextlib.contextmanager
def frozen_moving_statistics():
    """Context in which `BatchNorm` layers leave their moving statistics alone.

    Layers called with `training=True` inside it still normalise with the
    statistics of the batch. ENAS scores sampled architectures this way: the
    moving averages of a supernet mix many architectures and fit none of them,
    and scoring must not change them.

    Example:

    >>> import numpy as np
    >>> bn = BatchNorm()
    >>> x = np.random.rand(4, 3).astype("float32")
    >>> with frozen_moving_statistics():
    ...     _ = bn(x, training=True)
    >>> float(bn.moving_mean.numpy().sum())
    0.0
    """
    with _flag_set("frozen"):
        yield


def moving_statistics_frozen():
    """Whether the innermost `frozen_moving_statistics()` context is active."""
    return getattr(_statistics_flags, "frozen", False)


@contextlib.contextmanager
def recalibrated_moving_statistics():
    """Context in which `training=True` sets the moving statistics to the batch's.

    BN recalibration: a supernet's moving averages mix every architecture it
    trained, so before a child is scored in inference mode, one forward pass
    over a calibration batch (training images) replaces them with that
    child's own statistics. Shared-weight training never reads the moving
    statistics, so overwriting them per child costs the search nothing.

    Example:

    >>> import numpy as np
    >>> bn = BatchNorm()
    >>> x = np.random.rand(64, 3).astype("float32")
    >>> with recalibrated_moving_statistics():
    ...     _ = bn(x, training=True)
    >>> bool(np.allclose(bn.moving_mean.numpy(), x.mean(axis=0), atol=1e-5))
    True
    """
    with _flag_set("recalibrating"):
        yield


def moving_statistics_momentum(momentum):
    """`momentum`, or 0 (the batch's statistics replace the moving ones) while recalibrating."""
    return 0.0 if getattr(_statistics_flags, "recalibrating", False) else momentum


def fused_normalisation(inputs, gamma, beta, mean, variance, mode, momentum, epsilon):
    """Fused batch normalisation of NHWC `inputs` (TensorFlow backend).

    Args:
        inputs: a 4-D float16, bfloat16 or float32 tensor.
        gamma, beta, mean, variance: per-channel scale, offset and moving statistics.
        mode: `"train"` (batch statistics; returns updated moving statistics),
            `"batch"` (batch statistics only) or `"inference"` (moving statistics).
        momentum: momentum of the moving statistics.
        epsilon: small float added to the variance.

    Returns:
        `(outputs, new_mean, new_variance)`; the moving statistics are returned
        unchanged unless `mode == "train"`. bfloat16 `inputs` are normalised in
        float32 and give float32 `outputs`.
    """
    import tensorflow as tf

    if inputs.dtype == tf.bfloat16:
        # oneDNN's bfloat16 kernels for this op run about ten times slower on CPUs than its float32 ones
        # (benchmarks/bfloat16_speed.py); the two casts cost far less.
        inputs = tf.cast(inputs, tf.float32)
    arguments = dict(
        x=inputs,
        scale=tf.cast(gamma, tf.float32),
        offset=tf.cast(beta, tf.float32),
        epsilon=epsilon,
    )
    moving = dict(mean=tf.cast(mean, tf.float32), variance=tf.cast(variance, tf.float32))
    if mode == "batch":
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(is_training=True, **arguments)
        return outputs, mean, variance
    if mode == "train":
        return tf.compat.v1.nn.fused_batch_norm(
            is_training=True, exponential_avg_factor=1.0 - momentum, **arguments, **moving
        )
    outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(is_training=False, **arguments, **moving)
    return outputs, mean, variance


_SMALLEST_FUSED_EPSILON = 1.001e-5  # TensorFlow's fused kernel raises smaller ones to it


def fusable(layer, inputs, mask=None):
    """Whether the `BatchNormalization` `layer` can normalise `inputs` with the fused kernel."""
    return (
        keras.backend.backend() == "tensorflow"
        and mask is None
        and len(inputs.shape) == 4
        and layer.axis in (-1, 3)
        and layer.center
        and layer.scale
        and not getattr(layer, "renorm", False)
        and not getattr(layer, "synchronized", False)
        and keras.backend.standardize_dtype(inputs.dtype) in ("float16", "bfloat16", "float32")
    )


def _fused_call(layer, inputs, training):
    mode = "inference"
    if training and layer.trainable:
        mode = "batch" if moving_statistics_frozen() else "train"
    outputs, moving_mean, moving_variance = fused_normalisation(
        inputs,
        layer.gamma,
        layer.beta,
        layer.moving_mean,
        layer.moving_variance,
        mode=mode,
        momentum=moving_statistics_momentum(layer.momentum),
        epsilon=layer.epsilon,
    )
    if mode == "train":
        layer.moving_mean.assign(moving_mean)
        layer.moving_variance.assign(moving_variance)
    return ops.cast(outputs, layer.compute_dtype)


def fused_call(layer):
    """A `call` for the Keras `BatchNormalization` `layer` that uses the fused kernel where it can.

    The same normalisation as `layer.call` in one op forward and one
    backward instead of about a dozen element-wise ops each way; the moving
    variance then follows the unbiased batch variance (a relative
    difference of 1 / (batch x height x width)). Inputs the kernel cannot
    take, and an epsilon below the kernel's smallest (1.001e-5), go to
    `layer.call`. Supernets install it on a user's layers while
    their steps are traced (`keras_rlnas.supernet.ChoiceSupernet`).

    Args:
        layer: a built `keras.layers.BatchNormalization`.

    Returns:
        A function `call(inputs, training=None, mask=None)`.
    """
    original = layer.call

    def call(inputs, training=None, mask=None):
        if layer.epsilon < _SMALLEST_FUSED_EPSILON or not fusable(layer, inputs, mask):
            return original(inputs, training=training, mask=mask)
        return _fused_call(layer, inputs, training)

    return call


@keras.saving.register_keras_serializable(package="keras_rlnas")
class BatchNorm(layers.BatchNormalization):
    """Batch normalisation whose moving statistics can be frozen.

    Behaves as `keras.layers.BatchNormalization` (with the reference code's
    momentum and epsilon), except inside `frozen_moving_statistics()`, where
    `training=True` normalises with batch statistics without updating the
    moving ones. On the TensorFlow backend, 4-D inputs use the fused kernel
    (one op forward, one backward), whose moving variance is the unbiased
    batch variance; bfloat16 inputs are normalised in float32, the kernel's
    bfloat16 version being several times slower on CPUs.

    Args:
        momentum: momentum of the moving statistics.
        epsilon: small float added to the variance.
        **kwargs: other `BatchNormalization` arguments.
    """

    def __init__(self, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)

    def call(self, inputs, training=None, mask=None):
        batch_mode = training and self.trainable
        if not fusable(self, inputs, mask):
            if batch_mode and moving_statistics_frozen():
                return self._normalise_with_batch_statistics(inputs)
            if batch_mode and moving_statistics_momentum(self.momentum) == 0.0:
                return self._normalise_with_batch_statistics(inputs, recalibrate=True)
            return super().call(inputs, training=training, mask=mask)
        return _fused_call(self, inputs, training)

    def _normalise_with_batch_statistics(self, inputs, recalibrate=False):
        inputs = ops.cast(inputs, "float32")
        mean, variance = ops.moments(inputs, axes=list(range(len(inputs.shape) - 1)))
        if recalibrate:
            self.moving_mean.assign(ops.cast(mean, self.moving_mean.dtype))
            self.moving_variance.assign(ops.cast(variance, self.moving_variance.dtype))
        outputs = ops.batch_normalization(
            inputs,
            mean=mean,
            variance=variance,
            axis=-1,
            offset=ops.cast(self.beta, "float32"),
            scale=ops.cast(self.gamma, "float32"),
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)
