"""Building blocks shared by ENAS children and ENAS supernets.

A standalone child (`ENASMacro.build(hp)`, `ENASMicro.build(hp)`) and the
supernet of its space are made of the same layer classes with the same layer
names, so copying shared weights into a child is a copy by layer name.

All convolutions are bias-free, He-initialised and followed by batch
normalisation (`BatchNorm`).
"""

import keras
from keras import layers, ops

from keras_rlnas.layers.batch_norm import BatchNorm
from keras_rlnas.layers.pooling import Pool3x3, halved, make_pooling  # noqa: F401


def _regularizer(l2):
    return keras.regularizers.L2(l2) if l2 else None


def _build_chain(chain, input_shape):
    """Builds `chain` (layers applied one after the other) and returns its output shape."""
    shape = input_shape
    for layer in chain:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape


def _with_channels(shape, channels):
    return tuple(shape[:-1]) + (channels,)


class _Block(layers.Layer):
    """Base of the composite blocks: weights a child receives from a supernet copy."""

    def weights_for(self, child_layer):
        """The weights `child_layer` (the same block in a child) takes from this one."""
        del child_layer
        return self.get_weights()


@keras.saving.register_keras_serializable(package="keras_rlnas")
class ConvBN(_Block):
    """Optional ReLU, then a (separable) convolution, then batch normalisation.

    Args:
        filters: output channels.
        kernel_size: int, square kernel size.
        strides: int, convolution stride.
        separable: use a depthwise-separable convolution.
        relu_first: apply ReLU before the convolution (ReLU-conv-BN).
        l2: L2 factor on the convolution kernels; 0 disables it.

    Example:

    >>> import numpy as np
    >>> block = ConvBN(8, 3, relu_first=True)
    >>> tuple(block(np.zeros((2, 6, 6, 4), "float32")).shape)
    (2, 6, 6, 8)
    """

    def __init__(
        self, filters, kernel_size, strides=1, separable=False, relu_first=False, l2=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.separable = bool(separable)
        self.relu_first = bool(relu_first)
        self.l2 = float(l2)
        common = dict(strides=self.strides, padding="same", use_bias=False, dtype=self.dtype_policy)
        if self.separable:
            self.conv = layers.SeparableConv2D(
                self.filters,
                self.kernel_size,
                depthwise_initializer="he_normal",
                pointwise_initializer="he_normal",
                depthwise_regularizer=_regularizer(self.l2),
                pointwise_regularizer=_regularizer(self.l2),
                name="conv",
                **common,
            )
        else:
            self.conv = layers.Conv2D(
                self.filters,
                self.kernel_size,
                kernel_initializer="he_normal",
                kernel_regularizer=_regularizer(self.l2),
                name="conv",
                **common,
            )
        self.bn = BatchNorm(dtype=self.dtype_policy, name="bn")

    def build(self, input_shape):
        _build_chain([self.conv, self.bn], input_shape)

    def call(self, inputs, training=None):
        x = ops.relu(inputs) if self.relu_first else inputs
        return self.bn(self.conv(x), training=training)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            separable=self.separable,
            relu_first=self.relu_first,
            l2=self.l2,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_rlnas")
class MacroConv(_Block):
    """A convolution op of the ENAS macro space.

    A 1x1 convolution to the layer's width (conv-BN-ReLU), then the op itself
    as conv-BN (the ReLU of ReLU-conv-BN is the one after the 1x1 conv).

    Args:
        filters: output channels.
        kernel_size: 3 or 5.
        separable: depthwise-separable convolution.
        l2: L2 factor on the kernels.

    Example:

    >>> import numpy as np
    >>> tuple(MacroConv(8, 5, separable=True)(np.zeros((1, 6, 6, 3), "float32")).shape)
    (1, 6, 6, 8)
    """

    def __init__(self, filters, kernel_size, separable=False, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.separable = bool(separable)
        self.l2 = float(l2)
        self.project = ConvBN(self.filters, 1, l2=self.l2, dtype=self.dtype_policy, name="project")
        self.op = ConvBN(
            self.filters,
            self.kernel_size,
            separable=self.separable,
            relu_first=True,
            l2=self.l2,
            dtype=self.dtype_policy,
            name="op",
        )

    def build(self, input_shape):
        _build_chain([self.project, self.op], input_shape)

    def call(self, inputs, training=None):
        return self.op(self.project(inputs, training=training), training=training)

    def compute_output_shape(self, input_shape):
        return _with_channels(input_shape, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            separable=self.separable,
            l2=self.l2,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_rlnas")
class MacroPool(_Block):
    """A pooling op of the ENAS macro space: 1x1 conv-BN-ReLU, then 3x3 pooling.

    Args:
        filters: output channels.
        pooling: `"avg"` or `"max"`.
        l2: L2 factor on the 1x1 kernel.

    Example:

    >>> import numpy as np
    >>> tuple(MacroPool(8, "max")(np.zeros((1, 6, 6, 3), "float32")).shape)
    (1, 6, 6, 8)
    """

    def __init__(self, filters, pooling, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        if pooling not in ("avg", "max"):
            raise ValueError(f"`pooling` must be 'avg' or 'max', got {pooling!r}.")
        self.filters = int(filters)
        self.pooling = pooling
        self.l2 = float(l2)
        self.project = ConvBN(self.filters, 1, l2=self.l2, dtype=self.dtype_policy, name="project")
        self.pool = make_pooling(pooling, 1, dtype=self.dtype_policy, name="pool")

    def build(self, input_shape):
        self.project.build(input_shape)

    def call(self, inputs, training=None):
        return self.pool(ops.relu(self.project(inputs, training=training)))

    def compute_output_shape(self, input_shape):
        return _with_channels(input_shape, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, pooling=self.pooling, l2=self.l2)
        return config


def diagonal_phases(inputs):
    """The pixels at even (row, column) and at odd (row, column) positions.

    Returns `x[:, 0::2, 0::2]` and `x[:, 1::2, 1::2]` of `inputs` padded with
    one zero row / column at the end where the size is odd: what ENAS's two
    stride-2 paths read (the second one after shifting the input by one pixel).
    Built from a reshape and splits, whose gradients are cheap where those of
    strided slices are slow.
    """
    height, width, channels = inputs.shape[1:]
    if height is None or width is None:
        shifted = ops.pad(inputs[:, 1:, 1:, :], [[0, 0], [0, 1], [0, 1], [0, 0]])
        return inputs[:, ::2, ::2, :], shifted[:, ::2, ::2, :]
    if height % 2 or width % 2:
        inputs = ops.pad(inputs, [[0, 0], [0, height % 2], [0, width % 2], [0, 0]])
    # (h, w, c) -> (h / 2, row parity, w / 2, (column parity, c))
    pairs = ops.reshape(inputs, (-1, halved(height), 2, halved(width), 2 * channels))
    even_rows, odd_rows = (ops.squeeze(rows, axis=2) for rows in ops.split(pairs, 2, axis=2))
    return ops.split(even_rows, 2, axis=-1)[0], ops.split(odd_rows, 2, axis=-1)[1]


@keras.saving.register_keras_serializable(package="keras_rlnas")
class FactorizedReduction(_Block):
    """Halves height and width with two offset 1x1 stride-2 paths, concatenated.

    The second path sees the input shifted by one pixel, so together the two
    paths read every pixel. Output: BN of the concatenation. The paths are 1x1
    convolutions of `diagonal_phases(inputs)`.

    Args:
        filters: output channels (split between the two paths).
        relu_first: apply ReLU to the input first.
        l2: L2 factor on the kernels.

    Example:

    >>> import numpy as np
    >>> tuple(FactorizedReduction(8)(np.zeros((1, 7, 7, 3), "float32")).shape)
    (1, 4, 4, 8)
    """

    def __init__(self, filters, relu_first=False, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.relu_first = bool(relu_first)
        self.l2 = float(l2)
        halves = (self.filters // 2, self.filters - self.filters // 2)
        self.paths = [
            layers.Conv2D(
                width,
                1,
                use_bias=False,
                kernel_initializer="he_normal",
                kernel_regularizer=_regularizer(self.l2),
                dtype=self.dtype_policy,
                name=f"path{index}",
            )
            for index, width in enumerate(halves)
        ]
        self.bn = BatchNorm(dtype=self.dtype_policy, name="bn")

    def build(self, input_shape):
        for path in self.paths:
            path.build(input_shape)
        self.bn.build(self.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        x = ops.relu(inputs) if self.relu_first else inputs
        halves = [path(phase) for path, phase in zip(self.paths, diagonal_phases(x))]
        return self.bn(ops.concatenate(halves, axis=-1), training=training)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        return (batch, halved(height), halved(width), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, relu_first=self.relu_first, l2=self.l2)
        return config


@keras.saving.register_keras_serializable(package="keras_rlnas")
class SepConvStack(_Block):
    """A separable-convolution op of the ENAS micro space: ReLU-sepconv-BN twice.

    Args:
        filters: output channels.
        kernel_size: 3 or 5.
        strides: stride of the first separable convolution (2 in reduction cells).
        l2: L2 factor on the kernels.

    Example:

    >>> import numpy as np
    >>> tuple(SepConvStack(4, 3, strides=2)(np.zeros((1, 8, 8, 4), "float32")).shape)
    (1, 4, 4, 4)
    """

    def __init__(self, filters, kernel_size, strides=1, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.l2 = float(l2)
        self.stack = [
            ConvBN(
                self.filters,
                self.kernel_size,
                strides=self.strides if index == 0 else 1,
                separable=True,
                relu_first=True,
                l2=self.l2,
                dtype=self.dtype_policy,
                name=f"sepconv{index}",
            )
            for index in range(2)
        ]

    def build(self, input_shape):
        _build_chain(self.stack, input_shape)

    def call(self, inputs, training=None):
        x = inputs
        for conv in self.stack:
            x = conv(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return self.stack[1].compute_output_shape(self.stack[0].compute_output_shape(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, strides=self.strides, l2=self.l2
        )
        return config
