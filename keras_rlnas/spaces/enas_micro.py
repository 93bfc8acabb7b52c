"""The ENAS micro search space: a normal cell and a reduction cell, stacked."""

import keras
import numpy as np
from keras import layers

from keras_rlnas import _checks as checks
from keras_rlnas.layers import final_training, ops
from keras_rlnas.layers.projection import LooseEndProjection
from keras_rlnas.spaces import structured
from keras_rlnas.spaces.block_names import BlockNames
from keras_rlnas.spaces.enas_space import ENASSpace

MICRO_OPS = ("identity", "sepconv3x3", "sepconv5x5", "avgpool3x3", "maxpool3x3")
# The ENAS reference code's op order (micro_child.py): what its op indices mean.
REFERENCE_MICRO_OPS = ("sepconv3x3", "sepconv5x5", "avgpool3x3", "maxpool3x3", "identity")
CELL_GROUPS = ("normal_cell", "reduction_cell")
MICRO_BLOCK_NAMES = BlockNames(
    MICRO_OPS,
    stem="stem",
    calibration="cell{cell}_input{slot}",
    # A child's op reads one position; the supernet's holds the weights for every position.
    node_op="cell{cell}_node{node}_input{slot}_from{source}_{op}",
    shared_node_op="cell{cell}_node{node}_input{slot}_{op}",
    drop_path="cell{cell}_node{node}_input{slot}_drop_path",
    node="cell{cell}_node{node}",
    output="cell{cell}_output",
)


class ENASMicro(ENASSpace):
    """Cell space of ENAS (Pham et al., 2018), as a Keras Tuner HyperModel.

    A cell has two inputs (positions 0 and 1: the outputs of the two previous
    cells, brought to the cell's size and width) and `num_nodes` computed
    nodes (positions 2 .. B+1). Node `i` reads two earlier positions
    (`<cell>[i].input[0]`, `<cell>[i].input[1]`, with replacement), applies one
    op to each (`<cell>[i].op[0]`, `<cell>[i].op[1]`: identity, 3x3 / 5x5
    separable convolution (ReLU-sepconv-BN twice), 3x3 average / max pooling)
    and sums them. The computed nodes no node reads ("loose ends") are
    concatenated and projected (ReLU, 1x1 conv, BN) to the cell's width.
    `<cell>` is `normal_cell` or `reduction_cell`; reduction cells apply their
    ops at stride 2 to the cell inputs (identity becomes a factorised
    reduction) and double the width. Network: a 3x3 stem convolution, then
    `num_cells` normal cells, a reduction cell, `num_cells` normal cells, a
    reduction cell, `num_cells` normal cells; head: ReLU, global average
    pooling, dropout, dense softmax.

    An architecture is also an int32 vector (`encode`) laid out as the
    reference code's: for the normal cell then the reduction cell, for each
    node `[input0, op0, input1, op1]`, the op indices into `MICRO_OPS`. The
    reference code numbers the ops in another order:
    `from_reference_encoding` turns its `fixed_arc` into this space's encoding.
    The hyperparameters are declared in the reference controller's order,
    `[input0, input1, op0, op1]` per node, so a `ControllerOracle` picks both
    inputs of a node before its ops, as the reference controller does.

    Args:
        input_shape: `(height, width, channels)` of the images.
        num_classes: number of classes.
        num_cells: normal cells per stage (N).
        num_nodes: computed nodes per cell (B).
        filters: width of the first stage (C); doubled by each reduction.
        stem_multiplier: the stem has `stem_multiplier * filters` channels.
        dropout: dropout rate before the classifier.
        l2: L2 factor on all kernels.
        learning_rate, min_learning_rate, restart_period, restart_multiplier,
            momentum, steps_per_epoch: the children's optimizer
            (see `keras_rlnas.training.TrainingOptions`).
        name: name of the HyperModel.
        tunable: whether the hyperparameters are tunable.
        stem_strides: stride of the stem convolution (the papers' 1). 2
            halves the map before the first cell, for images too large to
            search at full resolution (measured in the macro space, see
            `ENASMacro`).

    Example:

    >>> import keras_tuner
    >>> from keras_rlnas import ENASMicro
    >>> space = ENASMicro((8, 8, 1), num_classes=3, num_cells=1, num_nodes=2, filters=4)
    >>> hp = keras_tuner.HyperParameters()
    >>> model = space.build(hp)
    >>> list(hp.values)[:4]
    ['normal_cell[2].input[0]', 'normal_cell[2].input[1]', 'normal_cell[2].op[0]', 'normal_cell[2].op[1]']
    >>> space.encode(hp).tolist()
    [0, 1, 1, 0, 1, 1, 2, 0, 0, 1, 1, 0, 1, 1, 2, 0]
    """

    OPS = MICRO_OPS
    REFERENCE_OPS = REFERENCE_MICRO_OPS
    BLOCK_NAMES = MICRO_BLOCK_NAMES
    head_relu = True

    def __init__(
        self,
        input_shape,
        num_classes,
        num_cells=2,
        num_nodes=5,
        filters=20,
        stem_multiplier=3,
        dropout=0.1,
        l2=2.5e-4,
        learning_rate=0.05,
        min_learning_rate=0.0005,
        restart_period=10,
        restart_multiplier=2,
        momentum=0.9,
        steps_per_epoch=None,
        name=None,
        tunable=True,
        stem_strides=1,
    ):
        super().__init__(
            input_shape, num_classes, filters, dropout, l2, learning_rate, min_learning_rate, restart_period,
            restart_multiplier, momentum, steps_per_epoch, name=name or "enas_micro", tunable=tunable,
            stem_strides=stem_strides,
        )
        self.num_cells = checks.positive_int("num_cells", num_cells)
        self.num_nodes = checks.positive_int("num_nodes", num_nodes)
        self.stem_multiplier = checks.positive_int("stem_multiplier", stem_multiplier)

    def get_config(self):
        return {
            **super().get_config(),
            "num_cells": self.num_cells,
            "num_nodes": self.num_nodes,
            "stem_multiplier": self.stem_multiplier,
        }

    @property
    def cell_plan(self):
        """Per cell: kind, width and the (level, channels) of its two inputs.

        The level of a tensor counts the reductions it went through. Derived
        from `num_cells`, `filters` and `stem_multiplier`, so a widened copy
        of the space plans wider cells.
        """
        plan = []
        stem = (0, self.stem_multiplier * self.filters)
        previous, last = stem, stem
        level = 0
        for stage in range(3):
            kinds = ["normal_cell"] * self.num_cells + (["reduction_cell"] if stage < 2 else [])
            for kind in kinds:
                if kind == "reduction_cell":
                    level += 1
                width = self.filters * 2**level
                plan.append({"kind": kind, "width": width, "inputs": (previous, last)})
                previous, last = last, (level, width)
        return tuple(plan)

    @property
    def anchor_steps(self):
        """The controller's steps without a choice: cell inputs 0 and 1 before each cell's
        decisions, and each node's last step, after its two inputs and two ops."""
        steps_per_node = 5
        steps_per_cell = 2 + steps_per_node * self.num_nodes
        return frozenset(
            cell * steps_per_cell + position
            for cell in range(len(CELL_GROUPS))
            for position in (0, 1, *(2 + steps_per_node * node + 4 for node in range(self.num_nodes)))
        )

    def encoding_from_actions(self, actions):
        """The encoding of a controller's sample (see `ENASSpace.encoding_from_actions`).

        The controller decides `[input0, input1, op0, op1]` per node; the
        encoding holds them as `[input0, op0, input1, op1]`.
        """
        by_decision = super().encoding_from_actions(actions)
        return by_decision.reshape(-1, 2, 2).transpose(0, 2, 1).reshape(-1)

    @property
    def node_positions(self):
        """Positions of the computed nodes of a cell: 2 .. B+1."""
        return range(2, self.num_nodes + 2)

    @property
    def encoding_length(self):
        """Length of an encoded architecture: 4 entries per node, two cells."""
        return 8 * self.num_nodes

    def node_offset(self, group, node):
        """Index of `<group>[node].input[0]` in an encoding; op[0], input[1], op[1] follow."""
        return CELL_GROUPS.index(group) * 4 * self.num_nodes + 4 * (node - 2)

    def _names(self, group, node, slot):
        return (
            structured.position_name(group, node, f"input[{slot}]"),
            structured.position_name(group, node, f"op[{slot}]"),
        )

    @property
    def op_positions(self):
        """Indices of the nodes' two ops in an encoding, both cell kinds."""
        return tuple(
            self.node_offset(group, node) + 2 * slot + 1
            for group in CELL_GROUPS
            for node in self.node_positions
            for slot in (0, 1)
        )

    def declare_hyperparameters(self, hp):
        """Declares both cells' inputs and ops in `hp` and returns the encoding."""
        for group in CELL_GROUPS:
            for node in self.node_positions:
                for slot in (0, 1):
                    structured.earlier_input(hp, group, node, slot, default=node - 2 + slot)
                for slot, default_op in enumerate(("sepconv3x3", "identity")):
                    hp.Choice(self._names(group, node, slot)[1], MICRO_OPS, default=default_op)
        return self.encode(hp)

    def encode(self, values):
        """The int32 vector of an architecture given as hyperparameter values.

        Args:
            values: a `keras_tuner.HyperParameters` or a `{name: value}` mapping.

        Returns:
            A `np.ndarray` of `encoding_length` int32 entries.
        """
        values = checks.values_of(values)
        encoding = []
        for group in CELL_GROUPS:
            for node in self.node_positions:
                for slot in (0, 1):
                    input_name, op_name = self._names(group, node, slot)
                    source, op = checks.lookup(values, input_name), checks.lookup(values, op_name)
                    if source not in range(node):
                        raise ValueError(f"`{input_name}` must be in [0, {node}), got {source!r}.")
                    if op not in MICRO_OPS:
                        raise ValueError(f"`{op_name}` must be one of {MICRO_OPS}, got {op!r}.")
                    encoding += [int(source), MICRO_OPS.index(op)]
        return np.asarray(encoding, dtype=np.int32)

    def parse(self, encoding):
        """Splits an encoding into `{group: ((source, op), (source, op)) per node}`."""
        encoding = checks.encoding("encoding", encoding, self.encoding_length)
        cells = {}
        for group in CELL_GROUPS:
            nodes = []
            for node in self.node_positions:
                offset = self.node_offset(group, node)
                pairs = tuple(
                    (int(encoding[offset + 2 * slot]), int(encoding[offset + 2 * slot + 1]))
                    for slot in (0, 1)
                )
                for source, op in pairs:
                    if not (0 <= source < node and 0 <= op < len(MICRO_OPS)):
                        raise ValueError(
                            f"Node {node} of the {group} in encoding {encoding.tolist()} is "
                            f"invalid: inputs must be in [0, {node}), ops in [0, {len(MICRO_OPS)})."
                        )
                nodes.append(pairs)
            cells[group] = tuple(nodes)
        return cells

    def decode(self, encoding):
        """The `{name: value}` hyperparameter values of an encoded architecture."""
        values = {}
        for group, nodes in self.parse(encoding).items():
            for node, pairs in zip(self.node_positions, nodes):
                for slot, (source, op) in enumerate(pairs):
                    input_name, op_name = self._names(group, node, slot)
                    values[input_name] = source
                    values[op_name] = MICRO_OPS[op]
        return values

    def random_encoding(self, seed=None):
        """A uniformly random architecture, encoded."""
        rng = np.random.default_rng(seed)
        encoding = []
        for _ in CELL_GROUPS:
            for node in self.node_positions:
                for _slot in (0, 1):
                    encoding += [rng.integers(node), rng.integers(len(MICRO_OPS))]
        return np.asarray(encoding, dtype=np.int32)

    def loose_ends(self, nodes):
        """The computed nodes (0-based among them) that no node of the cell reads.

        Unlike the reference code, an input of the cell that no node reads is
        not a loose end: the cell's output is made of computed nodes only.
        """
        read = {source for pairs in nodes for source, _ in pairs}
        return tuple(n for n in range(self.num_nodes) if n + 2 not in read)

    # Layer factories: the child and the supernet use the same ones, so their
    # layers share names and configurations.

    def make_stem(self, dtype=None):
        width = self.stem_multiplier * self.filters
        return ops.ConvBN(
            width, 3, strides=self.stem_strides, l2=self.l2, dtype=dtype, name=self.block_name("stem")
        )

    def make_calibration(self, cell, slot, dtype=None):
        """The layer bringing input `slot` of cell `cell` to its size and width, or `None`."""
        plan = self.cell_plan[cell]
        (level, channels), (last_level, _) = plan["inputs"][slot], plan["inputs"][1]
        name = self.block_name("calibration", cell=cell, slot=slot)
        if level < last_level:
            return ops.FactorizedReduction(
                plan["width"], relu_first=True, l2=self.l2, dtype=dtype, name=name
            )
        if channels != plan["width"]:
            return ops.ConvBN(plan["width"], 1, relu_first=True, l2=self.l2, dtype=dtype, name=name)
        return None

    def make_node_op(self, cell, node, slot, source, op_index, dtype=None):
        """The layer of op `op_index` from `source` into `node`, or `None` for identity."""
        plan = self.cell_plan[cell]
        op = MICRO_OPS[op_index]
        strides = 2 if plan["kind"] == "reduction_cell" and source < 2 else 1
        name = self.block_name("node_op", cell=cell, node=node, slot=slot, source=source, op=op)
        if op == "identity":
            if strides == 1:
                return None
            return ops.FactorizedReduction(plan["width"], l2=self.l2, dtype=dtype, name=name)
        if op.startswith("sepconv"):
            return ops.SepConvStack(
                plan["width"], int(op[-1]), strides=strides, l2=self.l2, dtype=dtype, name=name
            )
        return ops.make_pooling(op[:3], strides, name=name, dtype=dtype)

    def make_output(self, cell, loose_ends=None, dtype=None):
        width = self.cell_plan[cell]["width"]
        return LooseEndProjection(
            width,
            self.num_nodes,
            loose_ends,
            l2=self.l2,
            dtype=dtype,
            name=self.block_name("output", cell=cell),
        )

    def build_child(self, architecture, compile=True, drop_path=0.0, total_steps=None, auxiliary_weight=0.0):
        """The standalone child of an architecture.

        Args:
            architecture: an encoding, a `keras_tuner.HyperParameters` or a
                `{name: value}` mapping.
            compile: compile the model with the space's optimizer settings.
            drop_path: final-training drop-path rate (the reference code's
                0.4, i.e. keep probability 0.6), reached by the last cell at
                the end of training; 0 disables it.
            total_steps: training steps of the drop-path schedule (needed
                when `drop_path > 0`).
            auxiliary_weight: when above 0, the model gets a second output,
                an auxiliary classifier after the cell that follows the last
                reduction, whose loss is added with this weight (0.4 in
                the paper).

        Returns:
            A functional `keras.Model` mapping images to class probabilities
            (and to auxiliary probabilities, second, with `auxiliary_weight`).
        """
        drop_path = checks.fraction("drop_path", drop_path)
        if drop_path and total_steps is None:
            raise ValueError("`drop_path` needs `total_steps`, the length of its schedule.")
        auxiliary_weight = checks.non_negative_float("auxiliary_weight", auxiliary_weight)
        reductions = [i for i, plan in enumerate(self.cell_plan) if plan["kind"] == "reduction_cell"]
        auxiliary_after = min(reductions[-1] + 1, len(self.cell_plan) - 1)
        cells = self.parse(self.as_encoding(architecture))
        inputs = keras.Input(self.input_shape, name="images")
        previous = last = self.make_stem()(inputs)
        auxiliary = None
        for cell, plan in enumerate(self.cell_plan):
            # Deeper cells drop more, as in the reference code.
            cell_drop_path = drop_path * (cell + 1) / len(self.cell_plan)
            states = []
            for slot, tensor in enumerate((previous, last)):
                calibration = self.make_calibration(cell, slot)
                states.append(tensor if calibration is None else calibration(tensor))
            nodes = cells[plan["kind"]]
            for node, pairs in zip(self.node_positions, nodes):
                parts = []
                for slot, (source, op_index) in enumerate(pairs):
                    op = self.make_node_op(cell, node, slot, source, op_index)
                    if op is None:
                        parts.append(states[source])
                        continue
                    part = op(states[source])
                    if cell_drop_path and MICRO_OPS[op_index] != "identity":
                        name = self.block_name("drop_path", cell=cell, node=node, slot=slot)
                        part = final_training.ScheduledDropPath(cell_drop_path, total_steps, name=name)(part)
                    parts.append(part)
                states.append(layers.Add(name=self.block_name("node", cell=cell, node=node))(parts))
            loose_ends = self.loose_ends(nodes)
            output = self.make_output(cell, loose_ends)([states[n + 2] for n in loose_ends])
            previous, last = last, output
            if auxiliary_weight and cell == auxiliary_after:
                auxiliary = final_training.auxiliary_head(output, self.num_classes, l2=self.l2)
        extra_outputs = () if auxiliary is None else (auxiliary,)
        return self.finish_child(inputs, last, compile, extra_outputs, auxiliary_weight)
