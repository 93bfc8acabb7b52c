"""The six candidate ops of one ENAS macro layer, on entangled weights.

In the reference supernet every candidate op of a layer has its own weights,
so each trains only on the minibatches that sample it (one in six) and the
shared weights learn several times slower than one child does. Here the ops
of a layer share what they have in common, as Single-Path NAS (Stamoulis et
al., 2019) and Once-for-All (Cai et al., 2020) do:

- one 1x1 projection (conv-BN) serves all six ops, so it trains on every
  minibatch and is computed once, outside the switch;
- the 3x3 convolution is the centre of the 5x5 one, and the 3x3 separable
  convolution the centre of the 5x5 depthwise kernel with the same pointwise
  kernel.

Each convolution op keeps its own batch normalisation: the statistics of a
3x3 and of a 5x5 output differ. A child (`ENASMacro.build_child`) is
unchanged: `weights_for` cuts its weights out of the entangled ones.
"""

import keras
import tensorflow as tf
from keras import layers, ops

from keras_rlnas.layers.batch_norm import BatchNorm
from keras_rlnas.layers.ops import ConvBN, MacroConv, MacroPool
from keras_rlnas.layers.pooling import make_pooling

# op name -> (kind, kernel size); pooling ops have no kernel.
OP_KINDS = {
    "conv3x3": ("conv", 3),
    "conv5x5": ("conv", 5),
    "sepconv3x3": ("sep", 3),
    "sepconv5x5": ("sep", 5),
    "avgpool3x3": ("avg", None),
    "maxpool3x3": ("max", None),
}


def _centre(kernel, size):
    """The central `size` x `size` window of a square kernel."""
    margin = (int(kernel.shape[0]) - size) // 2
    return kernel[margin : margin + size, margin : margin + size]


class EntangledMacroOps(layers.Layer):
    """All candidate ops of one macro layer, sharing projection and kernels.

    Args:
        filters: output channels of every op.
        op_names: the space's ops in encoding order (`ENASMacro.OPS`).
        l2: L2 factor on the kernels an op uses.

    Example:

    >>> import numpy as np
    >>> from keras_rlnas.spaces.enas_macro import MACRO_OPS
    >>> block = EntangledMacroOps(8, MACRO_OPS, name="layer0_ops")
    >>> branches = block.branches(np.zeros((2, 6, 6, 3), "float32"), training=False)
    >>> [tuple(branch()[0].shape) for branch in branches][:2]
    [(2, 6, 6, 8), (2, 6, 6, 8)]
    """

    def __init__(self, filters, op_names, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.op_names = tuple(op_names)
        unknown = [name for name in self.op_names if name not in OP_KINDS]
        if unknown:
            raise ValueError(
                f"`op_names` holds ops without entangled weights: {unknown}; "
                f"known: {sorted(OP_KINDS)}."
            )
        self.l2 = float(l2)
        self.project = ConvBN(self.filters, 1, l2=self.l2, dtype=self.dtype_policy, name="project")
        self.norms = {
            (kind, size): BatchNorm(dtype=self.dtype_policy, name=f"{kind}{size}x{size}_bn")
            for kind, size in OP_KINDS.values()
            if size is not None
        }
        self.pools = {
            pooling: make_pooling(pooling, 1, dtype=self.dtype_policy, name=f"{pooling}pool")
            for pooling in ("avg", "max")
        }

    def build(self, input_shape):
        self.project.build(input_shape)
        channels = self.filters
        self.conv_kernel = self.add_weight(
            shape=(5, 5, channels, channels), initializer="he_normal", name="conv_kernel"
        )
        self.depthwise_kernel = self.add_weight(
            shape=(5, 5, channels, 1), initializer="he_normal", name="depthwise_kernel"
        )
        self.pointwise_kernel = self.add_weight(
            shape=(1, 1, channels, channels), initializer="he_normal", name="pointwise_kernel"
        )
        projected = self.project.compute_output_shape(input_shape)
        for norm in self.norms.values():
            norm.build(projected)
        self.built = True

    def _kernels(self, kind, size):
        if kind == "conv":
            return [_centre(self.conv_kernel, size)]
        return [_centre(self.depthwise_kernel, size), self.pointwise_kernel]

    def _penalty(self, kernels):
        if not self.l2:
            return tf.constant(0.0)
        return self.l2 * tf.add_n([tf.reduce_sum(tf.square(kernel)) for kernel in kernels])

    def branches(self, inputs, training):
        """One branch per op in `op_names` order; each returns `(output, L2 penalty)`.

        The projection is computed here, once, and read by every branch.
        """
        if not self.built:
            self.build(tuple(inputs.shape))
        projected = self.project(inputs, training=training)
        activated = ops.relu(projected)
        project_penalty = self._penalty([self.project.conv.kernel])
        dtype = activated.dtype

        def convolution(kind, size):
            kernels = self._kernels(kind, size)
            cast = [tf.cast(kernel, dtype) for kernel in kernels]
            if kind == "conv":
                output = tf.nn.conv2d(activated, cast[0], 1, "SAME")
            else:
                output = tf.nn.separable_conv2d(activated, cast[0], cast[1], [1, 1, 1, 1], "SAME")
            normalised = self.norms[(kind, size)](output, training=training)
            return normalised, project_penalty + self._penalty(kernels)

        def pooling(kind):
            return self.pools[kind](activated), project_penalty

        branches = []
        for name in self.op_names:
            kind, size = OP_KINDS[name]
            if size is None:
                branches.append(lambda kind=kind: pooling(kind))
            else:
                branches.append(lambda kind=kind, size=size: convolution(kind, size))
        return branches

    def weights_for(self, child_layer):
        """The weights of a child's `MacroConv` / `MacroPool`, cut from the entangled ones."""
        weights = self.project.get_weights()
        if isinstance(child_layer, MacroPool):
            return weights
        if not isinstance(child_layer, MacroConv):
            raise TypeError(f"No entangled weights for {child_layer!r}.")
        kind = "sep" if child_layer.separable else "conv"
        size = child_layer.kernel_size
        kernels = [keras.ops.convert_to_numpy(kernel) for kernel in self._kernels(kind, size)]
        return weights + kernels + self.norms[(kind, size)].get_weights()

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, op_names=list(self.op_names), l2=self.l2)
        return config
