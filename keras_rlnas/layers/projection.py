"""The output of an ENAS cell: its loose ends, concatenated and projected."""

import keras
from keras import ops

from keras_rlnas.layers.batch_norm import BatchNorm
from keras_rlnas.layers.ops import _Block, _regularizer, _with_channels


@keras.saving.register_keras_serializable(package="keras_rlnas")
class LooseEndProjection(_Block):
    """ReLU, concatenation and 1x1 projection of a cell's loose ends, then BN.

    The kernel is stored as one `(in_channels, filters)` slice per node, so a
    supernet (`loose_ends=None`: a slice for every node) can project any subset
    of nodes, and a child (`loose_ends` given) keeps only its own slices. A 1x1
    convolution of a concatenation is the sum of the slices' convolutions of
    the parts, which is how a supernet computes it (`project_node`).

    Args:
        filters: output channels.
        num_nodes: number of computed nodes of the cell.
        loose_ends: indices (0-based among the computed nodes) of the nodes this
            layer concatenates, in order; `None` for all of them.
        l2: L2 factor on the kernel.

    Example:

    >>> import numpy as np
    >>> parts = [np.zeros((1, 4, 4, 6), "float32")] * 2
    >>> tuple(LooseEndProjection(6, num_nodes=3, loose_ends=(0, 2))(parts).shape)
    (1, 4, 4, 6)
    """

    def __init__(self, filters, num_nodes, loose_ends=None, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.num_nodes = int(num_nodes)
        self.loose_ends = None if loose_ends is None else tuple(int(n) for n in loose_ends)
        if self.loose_ends is not None and not self.loose_ends:
            raise ValueError("`loose_ends` must name at least one node, got an empty sequence.")
        self.l2 = float(l2)
        self.bn = BatchNorm(dtype=self.dtype_policy, name="bn")

    @property
    def rows(self):
        """The nodes whose kernel slices this layer holds, in order."""
        return self.loose_ends if self.loose_ends is not None else tuple(range(self.num_nodes))

    def build(self, input_shape):
        part_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        self.kernel = self.add_weight(
            shape=(len(self.rows), part_shape[-1], self.filters),
            initializer="he_normal",
            regularizer=_regularizer(self.l2),
            name="kernel",
        )
        self.bn.build(_with_channels(part_shape, self.filters))

    def call(self, inputs, training=None):
        merged = ops.relu(ops.concatenate(list(inputs), axis=-1))
        kernel = ops.reshape(self.kernel, (1, 1, -1, self.filters))
        return self.bn(ops.conv(merged, ops.cast(kernel, merged.dtype)), training=training)

    def project_node(self, state, node):
        """The projection of one node's output, before BN (supernet use)."""
        kernel = ops.cast(self.kernel[self.rows.index(node)], state.dtype)
        return ops.conv(ops.relu(state), ops.reshape(kernel, (1, 1) + tuple(kernel.shape)))

    def compute_output_shape(self, input_shape):
        part_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        return _with_channels(part_shape, self.filters)

    def weights_for(self, child_layer):
        rows = [self.rows.index(node) for node in child_layer.rows]
        return [
            value[rows] if variable is self.kernel else value
            for variable, value in zip(self.weights, self.get_weights())
        ]

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            num_nodes=self.num_nodes,
            loose_ends=self.loose_ends,
            l2=self.l2,
        )
        return config
