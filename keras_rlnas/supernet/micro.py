"""The shared-weight supernet of the ENAS micro space."""

import functools

import tensorflow as tf

from keras_rlnas.layers import ops
from keras_rlnas.spaces.enas_micro import ENASMicro
from keras_rlnas.supernet.base import Supernet
from keras_rlnas.supernet.model import SupernetModel, regularization
from keras_rlnas.supernet.stacked import SourceStackedFactorizedReduction, SourceStackedSepConv


def _pooling_name(pooling, strides):
    """Name of the supernet's pooling layer shared by every node (pooling has no weights)."""
    return f"{pooling}pool_stride{strides}"


class _StateList:
    """Same-shaped cell states in a `TensorList`, read by a tensor index.

    Reading by index needs no switch. In the gradient, the list gives each
    state the sum of the gradients of the reads that picked it (a zero tensor
    only for a state nobody read), where a switch over the states would give
    every unpicked state a zero tensor per read.
    """

    def __init__(self, like, size):
        self.element_shape = tf.TensorShape(like.shape)
        self.dtype = like.dtype
        self.handle = tf.raw_ops.EmptyTensorList(
            element_shape=self._shape_argument(), max_num_elements=size, element_dtype=self.dtype
        )

    def _shape_argument(self):
        return [-1] + self.element_shape.as_list()[1:]

    def append(self, tensor):
        # Appending, not setting an item: the gradient of a set item is a
        # zero tensor for every state; that of an append is the state's own.
        self.handle = tf.raw_ops.TensorListPushBack(input_handle=self.handle, tensor=tensor)

    def get(self, index):
        tensor = tf.raw_ops.TensorListGetItem(
            input_handle=self.handle,
            index=index,
            element_shape=self._shape_argument(),
            element_dtype=self.dtype,
        )
        tensor.set_shape(self.element_shape)
        return tensor


class MicroSupernetModel(SupernetModel):
    """Every layer of every `ENASMicro` child.

    Each (cell, node, input slot, op) has one layer whose weights are stacked
    per earlier position it may read, as in the reference code; the output
    projection holds one kernel slice per node.

    Args:
        space: an `ENASMicro`.
        l2: L2 factor on the kernels of the sampled ops.
        dtype: dtype policy of the layers.
        share_sources: the separable convolutions of an input slot keep one
            weight set whatever position they read, not one per position.
    """

    def __init__(self, space, l2=0.0, dtype=None, share_sources=True, **kwargs):
        if not isinstance(space, ENASMicro):
            raise TypeError(f"MicroSupernet needs an ENASMicro space, got {space!r}.")
        super().__init__(space, l2=l2, name="micro_supernet", dtype=dtype, **kwargs)
        self.share_sources = bool(share_sources)
        self.add_block(space.make_stem(dtype))
        self.calibrations = []
        for cell, plan in enumerate(space.cell_plan):
            calibrations = [space.make_calibration(cell, slot, dtype) for slot in (0, 1)]
            self.calibrations.append([layer and self.add_block(layer) for layer in calibrations])
            for node in space.node_positions:
                for slot in (0, 1):
                    position = {"cell": cell, "node": node, "slot": slot}
                    width = plan["width"]
                    stacked = [
                        SourceStackedSepConv(
                            width,
                            size,
                            1 if self.share_sources else node,
                            l2=l2,
                            dtype=dtype,
                            name=space.block_name("shared_node_op", op=f"sepconv{size}x{size}", **position),
                        )
                        for size in (3, 5)
                    ]
                    if plan["kind"] == "reduction_cell":
                        stacked.append(
                            SourceStackedFactorizedReduction(
                                width,
                                2,
                                l2=l2,
                                dtype=dtype,
                                name=space.block_name("shared_node_op", op="identity", **position),
                            )
                        )
                    for layer in stacked:
                        # Every state of a cell has the cell's width once calibrated.
                        layer.build((None, None, None, width))
                        self.add_block(layer)
            self.add_block(space.make_output(cell, dtype=dtype))
        for pooling in ("avg", "max"):
            for strides in (1, 2):
                self.add_block(
                    ops.make_pooling(pooling, strides, _pooling_name(pooling, strides), dtype)
                )
        self.head_names = tuple(self.add_block(layer).name for layer in space.make_head(dtype))

    def shared_weights(self, child_layer):
        parsed = self.space.parse_block_name(child_layer.name)
        if parsed is None or parsed[0] != "node_op":
            return super().shared_weights(child_layer)
        position = dict(parsed[1])
        source, op = position.pop("source"), position.pop("op")
        if self.share_sources and op != "identity":
            source = 0
        return self._shared_node_op(position, op).weights_for_source(source)

    def _shared_node_op(self, position, op):
        """The supernet's layer of `op` at `position` (`cell`, `node`, `slot`)."""
        return self.blocks[self.space.block_name("shared_node_op", op=op, **position)]

    def _op_branches(self, position, inputs, row_source, rows, strides, training):
        """The 5 op branches on `inputs` at `strides`.

        `rows` maps the names of the stacked ops to their weights for the
        source the input is read from (`row_source[name]`, the row of the
        stacks), sliced outside the switch.
        """

        def stacked(name, **options):
            block = self._shared_node_op(position, name)
            return lambda: block.apply(
                inputs, rows[name], row_source[name], training=training, **options
            )

        def pooling(name):
            return lambda: self.blocks[_pooling_name(name, strides)](inputs)

        identity = (lambda: inputs) if strides == 1 else stacked("identity")
        return [
            identity,
            stacked("sepconv3x3", strides=strides),
            stacked("sepconv5x5", strides=strides),
            pooling("avg"),
            pooling("max"),
        ]

    def _node_input(self, cell, node, slot, lists, arch, offset, training):
        """Output of the op that input `slot` of `node` applies, and its L2 penalty."""
        position = {"cell": cell, "node": node, "slot": slot}
        source, op = arch[offset + 2 * slot], arch[offset + 2 * slot + 1]
        reduction = self.space.cell_plan[cell]["kind"] == "reduction_cell"
        names = ["sepconv3x3", "sepconv5x5"] + (["identity"] if reduction else [])
        # The identity's factorised reduction only exists for the cell inputs.
        row_source = {name: source for name in names}
        if self.share_sources:
            row_source["sepconv3x3"] = row_source["sepconv5x5"] = tf.zeros_like(source)
        if reduction:
            row_source["identity"] = tf.minimum(source, 1)
        blocks = {name: self._shared_node_op(position, name) for name in names}
        rows, penalty = {}, tf.constant(0.0)
        for name in names:
            used = tf.equal(op, self.space.OPS.index(name))
            if name == "identity":
                used = tf.logical_and(used, source < 2)
            # The penalty's gradient travels in the kernel slices' own gradient.
            scale = tf.where(used, self.l2, 0.0)
            rows[name] = blocks[name].rows(row_source[name], penalty_scale=scale)
            value = tf.stop_gradient(blocks[name].kernel_penalty(rows[name]))
            penalty = tf.where(used, value, penalty)

        def switch(index, branches):
            # A scalar zero as penalty keeps the branch structure of `self.switch`.
            return self.switch(index, branches), penalty

        if not reduction:
            inputs = lists["states"].get(source)
            return switch(op, self._op_branches(position, inputs, row_source, rows, 1, training))
        # Reduction cell: the cell inputs (larger) are read at stride 2, computed nodes at 1.
        wide = lists["inputs"].get(tf.minimum(source, 1))
        wide_branches = self._op_branches(position, wide, row_source, rows, 2, training)
        if node == 2:
            return switch(op, wide_branches)
        narrow = lists["nodes"].get(tf.clip_by_value(source - 2, 0, node - 3))
        narrow_branches = self._op_branches(position, narrow, row_source, rows, 1, training)
        branches = [branch for pair in zip(wide_branches, narrow_branches) for branch in pair]
        return switch(op * 2 + tf.cast(source >= 2, tf.int32), branches)

    def _project_loose_ends(self, cell, states, arch, group, training):
        """ReLU, 1x1 projection and BN of the nodes that no node reads."""
        space = self.space
        projection = self.blocks[space.block_name("output", cell=cell)]
        if not projection.built:
            projection.build(tuple(states[2].shape))
        read = tf.gather(
            arch,
            [
                space.node_offset(group, node) + 2 * slot
                for node in space.node_positions
                for slot in (0, 1)
            ],
        )

        def penalty(node):
            if not self.l2:
                return tf.constant(0.0)
            return self.l2 * tf.reduce_sum(tf.square(tf.cast(projection.kernel[node], tf.float32)))

        # The last node is never read, so it is always a loose end.
        last = space.num_nodes - 1
        total, l2 = projection.project_node(states[last + 2], last), penalty(last)
        for node in range(last):

            def add(total=total, l2=l2, node=node):
                return total + projection.project_node(states[node + 2], node), l2 + penalty(node)

            total, l2 = self.cond(
                tf.reduce_all(read != node + 2), add, lambda total=total, l2=l2: (total, l2)
            )
        return projection.bn(total, training=training), l2

    def forward(self, images, arch, training=False, batch_statistics=None):
        space = self.space
        normalise_with_batch = training if batch_statistics is None else batch_statistics
        previous, l2 = self.branch(self.blocks[space.block_name("stem")], images, normalise_with_batch)()
        last = previous
        for cell, plan in enumerate(space.cell_plan):
            group = plan["kind"]
            states = []
            for tensor, calibration in zip((previous, last), self.calibrations[cell]):
                if calibration is None:
                    states.append(tensor)
                else:
                    state, calibration_l2 = self.branch(calibration, tensor, normalise_with_batch)()
                    states.append(state)
                    l2 += calibration_l2
            # Normal cells read every state alike; reduction cells read the two
            # (larger) cell inputs and the computed nodes differently.
            reduction = group == "reduction_cell"
            first = _StateList(states[0], 2 if reduction else 2 + space.num_nodes)
            lists = {"inputs" if reduction else "states": first}
            for state in states:
                next(iter(lists.values())).append(state)
            for node in space.node_positions:
                offset = space.node_offset(group, node)
                parts = []
                for slot in (0, 1):
                    part, part_l2 = self._node_input(
                        cell, node, slot, lists, arch, offset, normalise_with_batch
                    )
                    parts.append(part)
                    l2 += part_l2
                states.append(parts[0] + parts[1])
                if not reduction:
                    lists["states"].append(states[-1])
                else:
                    lists.setdefault("nodes", _StateList(states[-1], space.num_nodes)).append(
                        states[-1]
                    )
            output, output_l2 = self._project_loose_ends(
                cell, states, arch, group, normalise_with_batch
            )
            previous, last = last, output
            l2 += output_l2
        relu, pool, dropout, dense, _ = (self.blocks[name] for name in self.head_names)
        logits = dense(dropout(pool(relu(last)), training=training))
        return tf.cast(logits, tf.float32), l2 + regularization(dense, self.l2)


class MicroSupernet(Supernet):
    """Shared weights of every child of an `ENASMicro` space.

    Input `k` of a node selects its earlier position and then its op with
    `tf.switch_case` (in reduction cells the op switch also tells the stride-2
    reads of the cell inputs from the stride-1 reads of computed nodes); the
    op's weights are the slot's single weight set (`share_sources=True`) or,
    as in the reference code, that position's slice of per-position stacks.
    Each loose end's slice of the output projection is added under a
    `tf.cond`. One traced step serves every architecture and computes only
    the sampled child.

    Args:
        space: an `ENASMicro`.
        share_sources: a node's separable convolutions keep one weight set
            for every earlier position they may read, so they train whenever
            their op is sampled (after 6 uniform epochs on 12,000 images:
            0.669 against 0.606 validation accuracy, see the README); `False`
            stacks one set per position, as the reference code does.
        **kwargs: options of `keras_rlnas.supernet.base.Supernet`.

    Example (`tests/test_supernet_micro.py` runs the same steps):

    ```python
    import numpy as np
    from keras_rlnas.spaces import ENASMicro
    from keras_rlnas.supernet import MicroSupernet

    space = ENASMicro((8, 8, 1), num_classes=3, num_cells=1, num_nodes=2, filters=4)
    net = MicroSupernet(space)
    images, labels = np.random.rand(4, 8, 8, 1), np.array([0, 1, 2, 0])
    for seed in range(3):
        net.train_step(images, labels, space.random_encoding(seed))
    net.trace_counts["train"]  # 1: one trace serves every architecture
    ```
    """

    def __init__(self, space, share_sources=True, **kwargs):
        self.share_sources = bool(share_sources)
        self.model_class = functools.partial(MicroSupernetModel, share_sources=self.share_sources)
        super().__init__(space, **kwargs)
