"""Micro-space op layers that hold one weight set per possible input.

In the ENAS reference code an op of a cell node has its own weights for each
earlier node it may read; they are stacked along a first "source" axis and
the sampled source's slice is gathered. One layer per (node, slot, op) then
serves every source, which keeps a supernet's graph (and its tracing time)
small. A child's `SepConvStack` / `FactorizedReduction` reading source `j`
takes slice `j` (`weights_for_source`). A `MicroSupernet(share_sources=True)`
(its default) stacks a single slice, read whatever the source. These layers
run on TensorFlow only, as the supernets do.
"""

import keras
import tensorflow as tf
from keras import layers, ops

from keras_rlnas.layers.batch_norm import (
    BN_EPSILON,
    BN_MOMENTUM,
    fused_normalisation,
    moving_statistics_frozen,
    moving_statistics_momentum,
)
from keras_rlnas.layers.ops import diagonal_phases


class _PerSourceInitializer(keras.initializers.Initializer):
    """Initialises each source's slice as `base` initialises one unstacked weight."""

    def __init__(self, base):
        self.base = keras.initializers.get(base)

    def __call__(self, shape, dtype=None):
        return ops.stack([self.base(shape[1:], dtype=dtype) for _ in range(shape[0])])


@tf.custom_gradient
def _with_penalty_gradient(row, scale):
    """`row`, whose gradient also holds that of `scale * sum(row ** 2)`.

    A kernel slice read by its op and by the L2 penalty would need its two
    gradients added, one small op per kernel; adding the penalty's here
    saves hundreds of them per step in a micro supernet.
    """

    def gradient(upstream):
        return upstream + 2.0 * scale * row, None

    return tf.identity(row), gradient


class _SourceStacked(layers.Layer):
    """Base: per-source kernels followed by per-source batch normalisation.

    Subclasses create their variables with `add_kernel` and
    `add_normalisation` in the order of the unstacked child layer's `weights`,
    so slice `j` of every variable, in creation order, is the weight list of
    the child layer that reads source `j`.

    A supernet slices the rows of the sampled source with `rows(source)`
    outside its `tf.switch_case` and passes them to `apply` inside a branch:
    the branch then keeps few intermediates, which keeps the gradient of the
    switch small.

    Args:
        num_sources: how many inputs the op may read.
        l2: L2 factor of `kernel_penalty`.
    """

    def __init__(self, num_sources, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_sources = int(num_sources)
        self.l2 = float(l2)
        self.stacked = []
        self.kernel_indices = []

    def add_kernel(self, shape, name):
        self.kernel_indices.append(len(self.stacked))
        self.stacked.append(
            self.add_weight(
                shape=(self.num_sources,) + tuple(shape),
                initializer=_PerSourceInitializer("he_normal"),
                name=name,
            )
        )
        return len(self.stacked) - 1

    def add_normalisation(self, channels, name):
        """Adds gamma, beta and moving statistics; returns the index of gamma."""
        first = len(self.stacked)
        for key, initializer, trainable in (
            ("gamma", "ones", True),
            ("beta", "zeros", True),
            ("moving_mean", "zeros", False),
            ("moving_variance", "ones", False),
        ):
            self.stacked.append(
                self.add_weight(
                    shape=(self.num_sources, channels),
                    initializer=initializer,
                    trainable=trainable,
                    autocast=False,
                    name=f"{name}_{key}",
                )
            )
        return first

    def rows(self, source, penalty_scale=None):
        """Source `source`'s slice of every variable, in creation order.

        Args:
            source: int32 scalar tensor.
            penalty_scale: optional float32 scalar, e.g. `l2` where the op is
                sampled and 0 elsewhere: the kernel slices then carry the
                gradient of `penalty_scale * |slice|^2` in their own gradient,
                and `kernel_penalty` only reports its value.
        """
        # tf.slice, not tf.gather: its gradient is a dense tensor that the
        # optimizer applies as it is (a gather's IndexedSlices would first be
        # scattered into one), and it traces faster than indexing.
        starts = {}
        rows = []
        for index, variable in enumerate(self.stacked):
            rank = len(variable.shape)
            if rank not in starts:
                starts[rank] = tf.pad(tf.reshape(tf.cast(source, tf.int32), [1]), [[0, rank - 1]])
            size = (1,) + tuple(variable.shape[1:])
            row = tf.reshape(tf.slice(variable, starts[rank], size), size[1:])
            if penalty_scale is not None and index in self.kernel_indices:
                row = _with_penalty_gradient(row, penalty_scale)
            rows.append(row)
        return rows

    def kernel_penalty(self, rows):
        """`l2` times the squared norm of the kernels in `rows` (float32 scalar)."""
        if not self.l2:
            return tf.constant(0.0)
        squares = [tf.reduce_sum(tf.square(rows[index])) for index in self.kernel_indices]
        return self.l2 * tf.add_n(squares)

    def normalise(self, inputs, rows, first, source, training):
        mode = "inference"
        if training:
            mode = "batch" if moving_statistics_frozen() else "train"
        outputs, mean, variance = fused_normalisation(
            inputs,
            *rows[first : first + 4],
            mode=mode,
            momentum=moving_statistics_momentum(BN_MOMENTUM),
            epsilon=BN_EPSILON,
        )
        if mode == "train":
            indices = tf.reshape(source, [1])
            for variable, value in zip(self.stacked[first + 2 : first + 4], (mean, variance)):
                variable.value.scatter_update(tf.IndexedSlices(value[None], indices))
        return ops.cast(outputs, self.compute_dtype)

    def call(self, inputs, source, training=None, **options):
        return self.apply(inputs, self.rows(source), source, training=training, **options)

    def weights_for_source(self, source):
        """The weights of the unstacked child layer that reads source `source`."""
        return [ops.convert_to_numpy(variable)[source] for variable in self.stacked]

    def get_config(self):
        config = super().get_config()
        config.update(num_sources=self.num_sources, l2=self.l2)
        return config


class SourceStackedSepConv(_SourceStacked):
    """`SepConvStack` (ReLU-sepconv-BN twice) with one weight set per source.

    Args:
        filters: output channels.
        kernel_size: 3 or 5.
        num_sources: how many inputs the op may read.
        l2: L2 factor of `kernel_penalty`.

    Call arguments:
        inputs: the selected input.
        source: int32 scalar tensor, which input it is.
        strides: Python int, stride of the first separable convolution.
        training: training mode of the batch normalisations.

    Example:

    >>> import numpy as np
    >>> layer = SourceStackedSepConv(4, 3, num_sources=3)
    >>> tuple(layer(np.zeros((1, 8, 8, 2), "float32"), source=1, strides=2).shape)
    (1, 4, 4, 4)
    """

    def __init__(self, filters, kernel_size, num_sources, l2=0.0, **kwargs):
        super().__init__(num_sources, l2=l2, **kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)

    def build(self, input_shape):
        self.stages = []
        channels = input_shape[-1]
        size = self.kernel_size
        for index in range(2):
            depthwise = self.add_kernel((size, size, channels, 1), f"sepconv{index}_depthwise")
            pointwise = self.add_kernel((1, 1, channels, self.filters), f"sepconv{index}_pointwise")
            normalisation = self.add_normalisation(self.filters, f"sepconv{index}_bn")
            self.stages.append((depthwise, pointwise, normalisation))
            channels = self.filters

    def apply(self, inputs, rows, source, training=None, strides=1):
        """The op on `inputs` with the sliced weights `rows` of `source`."""
        x = inputs
        for index, (depthwise, pointwise, normalisation) in enumerate(self.stages):
            x = ops.separable_conv(
                ops.relu(x),
                ops.cast(rows[depthwise], x.dtype),
                ops.cast(rows[pointwise], x.dtype),
                strides=strides if index == 0 else 1,
                padding="same",
            )
            x = self.normalise(x, rows, normalisation, source, training)
        return x

    def compute_output_shape(self, input_shape, strides=1):
        height, width = (None if d is None else -(-d // strides) for d in input_shape[1:3])
        return (input_shape[0], height, width, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size)
        return config


class SourceStackedFactorizedReduction(_SourceStacked):
    """`FactorizedReduction` with one weight set per source (stride-2 identity).

    Args:
        filters: output channels.
        num_sources: how many inputs the op may read.
        l2: L2 factor of `kernel_penalty`.

    Call arguments:
        inputs: the selected input.
        source: int32 scalar tensor, which input it is.
        training: training mode of the batch normalisation.
    """

    def __init__(self, filters, num_sources, l2=0.0, **kwargs):
        super().__init__(num_sources, l2=l2, **kwargs)
        self.filters = int(filters)

    def build(self, input_shape):
        halves = (self.filters // 2, self.filters - self.filters // 2)
        self.paths = [
            self.add_kernel((1, 1, input_shape[-1], width), f"path{index}_kernel")
            for index, width in enumerate(halves)
        ]
        self.normalisation = self.add_normalisation(self.filters, "bn")

    def apply(self, inputs, rows, source, training=None):
        """The op on `inputs` with the sliced weights `rows` of `source`."""
        halves = [
            ops.conv(phase, ops.cast(rows[path], phase.dtype))
            for phase, path in zip(diagonal_phases(inputs), self.paths)
        ]
        merged = ops.concatenate(halves, axis=-1)
        return self.normalise(merged, rows, self.normalisation, source, training)

    def compute_output_shape(self, input_shape):
        height, width = (None if d is None else -(-d // 2) for d in input_shape[1:3])
        return (input_shape[0], height, width, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters)
        return config
