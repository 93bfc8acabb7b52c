"""The shared-weight supernet of the ENAS macro space."""

import functools

import tensorflow as tf

from keras_rlnas.spaces.enas_macro import ENASMacro
from keras_rlnas.supernet.base import Supernet
from keras_rlnas.supernet.entangled import EntangledMacroOps
from keras_rlnas.supernet.model import SupernetModel, regularization


class MacroSupernetModel(SupernetModel):
    """Every layer of every `ENASMacro` child: 6 ops per layer, all reductions.

    Args:
        space: an `ENASMacro`.
        l2: L2 factor on the kernels of the sampled ops.
        dtype: dtype policy of the layers.
        entangled: the ops of a layer share their projection and kernels
            (`EntangledMacroOps`); otherwise each op has its own weights, as in
            the reference code.
    """

    def __init__(self, space, l2=0.0, dtype=None, entangled=True, **kwargs):
        if not isinstance(space, ENASMacro):
            raise TypeError(f"MacroSupernet needs an ENASMacro space, got {space!r}.")
        super().__init__(space, l2=l2, name="macro_supernet", dtype=dtype, **kwargs)
        self.entangled = bool(entangled)
        self.add_block(space.make_stem(dtype))
        self.layer_ops = []
        for layer in range(space.num_layers):
            if self.entangled:
                name = space.block_name("layer_ops", layer=layer)
                block = self.add_block(
                    EntangledMacroOps(space.filters, space.OPS, l2=l2, dtype=dtype, name=name)
                )
                for op in space.OPS:  # a child's op layer copies its weights from the block
                    self.blocks[space.block_name("op", layer=layer, op=op)] = block
                self.layer_ops.append(block.branches)
            else:
                candidates = [
                    self.add_block(space.make_op(layer, op_index, dtype))
                    for op_index in range(len(space.OPS))
                ]
                self.layer_ops.append(functools.partial(self._separate_branches, candidates))
            if layer > 0:
                self.add_block(space.make_skip_norm(layer, dtype))
        for reduction, position in enumerate(space.reduction_positions):
            for source in range(position + 1):
                self.add_block(space.make_reduction(reduction, source, dtype))
        self.head_names = tuple(self.add_block(layer).name for layer in space.make_head(dtype))

    def _separate_branches(self, candidates, inputs, training):
        return [self.branch(block, inputs, training) for block in candidates]

    def _read_later(self, arch, reduction, source):
        """Whether a layer after reduction `reduction` adds layer `source`'s output."""
        space = self.space
        position = space.reduction_positions[reduction]
        bits = [
            space.layer_offset(later) + 1 + source
            for later in range(position + 1, space.num_layers)
        ]
        return tf.reduce_any(tf.gather(arch, bits) > 0)

    def _reduce(self, arch, reduction, source, output, training):
        block = self.blocks[self.space.block_name("reduction", reduction=reduction, source=source)]
        apply = self.branch(block, output, training)
        if source == self.space.reduction_positions[reduction]:
            return apply()  # the next layer's input: always needed

        def skip():
            shape = block.compute_output_shape(output.shape)
            zeros_shape = tf.concat([tf.shape(output)[:1], shape[1:]], axis=0)
            return tf.zeros(zeros_shape, output.dtype), tf.constant(0.0)

        return self.cond(self._read_later(arch, reduction, source), apply, skip)

    def forward(self, images, arch, training=False, batch_statistics=None):
        space = self.space
        normalise_with_batch = training if batch_statistics is None else batch_statistics
        x, l2 = self.branch(self.blocks[space.block_name("stem")], images, normalise_with_batch)()
        stored = []
        for layer in range(space.num_layers):
            offset = space.layer_offset(layer)
            branches = self.layer_ops[layer](x, normalise_with_batch)
            y, op_l2 = self.switch(arch[offset], branches)
            l2 += op_l2
            if layer > 0:
                for source in range(layer):
                    y = self.cond(
                        arch[offset + 1 + source] > 0,
                        lambda y=y, skip=stored[source]: y + skip,
                        lambda y=y: y,
                    )
                skip_norm = self.blocks[space.block_name("skip_norm", layer=layer)]
                y = skip_norm(y, training=normalise_with_batch)
            stored.append(y)
            x = y
            if layer in space.reduction_positions:
                reduction = space.reduction_positions.index(layer)
                for source in range(layer + 1):
                    stored[source], reduction_l2 = self._reduce(
                        arch, reduction, source, stored[source], normalise_with_batch
                    )
                    l2 += reduction_l2
                x = stored[layer]
        pool, dropout, dense, _ = (self.blocks[name] for name in self.head_names)
        logits = dense(dropout(pool(x), training=training))
        return tf.cast(logits, tf.float32), l2 + regularization(dense, self.l2)


class MacroSupernet(Supernet):
    """Shared weights of every child of an `ENASMacro` space.

    Per minibatch `train_step(x, y, arch)` trains the sampled child; the
    op of layer `i` is picked by `tf.switch_case` on `arch[offset_i]`, skips
    and the reductions of stored outputs that a child does not read are
    skipped with `tf.cond`, so a step computes what the child computes.

    Args:
        space: an `ENASMacro`.
        entangled: the six ops of a layer share one 1x1 projection, the 3x3
            convolutions are the centres of the 5x5 ones (`EntangledMacroOps`),
            so the shared weights train on every minibatch; `False` gives every
            op its own weights, as the reference code does.
        **kwargs: options of `keras_rlnas.supernet.base.Supernet`.

    Example:

    >>> from keras_rlnas.spaces import ENASMacro
    >>> import numpy as np
    >>> space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4)
    >>> net = MacroSupernet(space)
    >>> images = np.random.rand(4, 8, 8, 1)
    >>> labels = np.array([0, 1, 2, 0])
    >>> for seed in range(3):
    ...     _ = net.train_step(images, labels, space.random_encoding(seed))
    >>> net.trace_counts["train"]
    1
    >>> child = net.build_child(space.random_encoding(0))
    """

    def __init__(self, space, entangled=True, **kwargs):
        self.entangled = bool(entangled)
        self.model_class = functools.partial(MacroSupernetModel, entangled=self.entangled)
        super().__init__(space, **kwargs)
