"""The ENAS macro search space: a whole network, one op and a set of skips per layer."""

import keras
import numpy as np
from keras import layers

from keras_rlnas import _checks as checks
from keras_rlnas.layers import ops
from keras_rlnas.spaces import structured
from keras_rlnas.spaces.block_names import BlockNames
from keras_rlnas.spaces.enas_space import ENASSpace

MACRO_OPS = ("conv3x3", "conv5x5", "sepconv3x3", "sepconv5x5", "avgpool3x3", "maxpool3x3")
# The ENAS reference code's branch order (general_child.py): what its op indices mean.
REFERENCE_MACRO_OPS = ("conv3x3", "sepconv3x3", "conv5x5", "sepconv5x5", "avgpool3x3", "maxpool3x3")
GROUP = "layers"
MACRO_BLOCK_NAMES = BlockNames(
    MACRO_OPS,
    stem="stem",
    op="layer{layer}_{op}",
    layer_ops="layer{layer}_ops",
    skip_sum="layer{layer}_skip_sum",
    skip_norm="layer{layer}_bn",
    reduction="reduction{reduction}_layer{source}",
)


class ENASMacro(ENASSpace):
    """Whole-network space of ENAS (Pham et al., 2018), as a Keras Tuner HyperModel.

    Layer `i` applies one of six ops (`layers[i].op`: 3x3 / 5x5 convolution,
    3x3 / 5x5 separable convolution, 3x3 average / max pooling, all at stride 1
    and each preceded by a 1x1 convolution to `filters` channels) to the output
    of layer `i - 1` (a 3x3 stem convolution for layer 0). Then the outputs of
    the earlier layers `j` with `layers[i].skip[j]` true are added, followed by
    batch normalisation. After layers `d - 1` and `2d - 1` (`d = L // 3`) every stored
    layer output that is still read later is halved by a factorised reduction.
    Head: global average pooling, dropout, dense softmax.

    `build(hp)` returns the standalone child (compiled with Nesterov SGD and
    cosine warm restarts); `MacroSupernet(space)` trains every child at once
    with shared weights. An architecture is also an int32 vector (`encode`),
    laid out as the reference code's: for each layer, the op index (into
    `MACRO_OPS`) then its skip bits `[op_0, op_1, s_1_0, op_2, s_2_0, s_2_1,
    ...]`. The reference code numbers the ops in another order:
    `from_reference_encoding` turns its `fixed_arc` into this space's encoding.

    Args:
        input_shape: `(height, width, channels)` of the images.
        num_classes: number of classes.
        num_layers: number of searched layers L (at least 3).
        filters: channels of every layer.
        dropout: dropout rate before the classifier.
        l2: L2 factor on all kernels.
        learning_rate, min_learning_rate, restart_period, restart_multiplier,
            momentum, steps_per_epoch: the children's optimizer
            (see `keras_rlnas.training.TrainingOptions`).
        name: name of the HyperModel.
        tunable: whether the hyperparameters are tunable.
        stem_strides: stride of the stem convolution (the papers' 1). 2
            halves the map before the first searched layer, for images too
            large to search at full resolution: on 28x28 Fashion-MNIST it
            halves a 6 x 24 macro child's time per image and cost it 0.004
            test accuracy at the same 7.8-minute training budget.

    Example:

    >>> import keras_tuner
    >>> from keras_rlnas import ENASMacro
    >>> space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4)
    >>> hp = keras_tuner.HyperParameters()
    >>> model = space.build(hp)
    >>> sorted(hp.values)[:2]
    ['layers[0].op', 'layers[1].op']
    >>> space.encode(hp).tolist()
    [0, 0, 0, 0, 0, 0]
    """

    OPS = MACRO_OPS
    REFERENCE_OPS = REFERENCE_MACRO_OPS
    BLOCK_NAMES = MACRO_BLOCK_NAMES

    def __init__(
        self,
        input_shape,
        num_classes,
        num_layers=12,
        filters=36,
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
            restart_multiplier, momentum, steps_per_epoch, name=name or "enas_macro", tunable=tunable,
            stem_strides=stem_strides,
        )
        self.num_layers = checks.positive_int("num_layers", num_layers, minimum=3)

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers}

    @property
    def reduction_positions(self):
        """Layers after which the stored outputs are halved: `(d - 1, 2d - 1)`, `d = L // 3`, as the reference code."""
        distance = self.num_layers // 3
        return (distance - 1, 2 * distance - 1)

    @property
    def encoding_length(self):
        """Length of an encoded architecture: L ops plus L(L-1)/2 skip bits."""
        return self.num_layers * (self.num_layers + 1) // 2

    def layer_offset(self, layer):
        """Index of `layers[layer].op` in an encoding; its skip bits follow it."""
        return layer * (layer + 1) // 2

    @property
    def op_positions(self):
        """Indices of the layers' ops in an encoding."""
        return tuple(self.layer_offset(layer) for layer in range(self.num_layers))

    def declare_hyperparameters(self, hp):
        """Declares every layer's op and skips in `hp` and returns the encoding."""
        for layer in range(self.num_layers):
            hp.Choice(structured.position_name(GROUP, layer, "op"), MACRO_OPS, default=MACRO_OPS[0])
            structured.skip_inputs(hp, GROUP, layer)
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
        for layer in range(self.num_layers):
            op_name = structured.position_name(GROUP, layer, "op")
            op = checks.lookup(values, op_name)
            if op not in MACRO_OPS:
                raise ValueError(f"`{op_name}` must be one of {MACRO_OPS}, got {op!r}.")
            encoding.append(MACRO_OPS.index(op))
            for source in range(layer):
                skip = checks.lookup(
                    values, structured.position_name(GROUP, layer, f"skip[{source}]")
                )
                encoding.append(int(bool(skip)))
        return np.asarray(encoding, dtype=np.int32)

    def decode(self, encoding):
        """The `{name: value}` hyperparameter values of an encoded architecture."""
        op_indices, skips = self.parse(encoding)
        values = {}
        for layer in range(self.num_layers):
            values[structured.position_name(GROUP, layer, "op")] = MACRO_OPS[op_indices[layer]]
            for source in range(layer):
                name = structured.position_name(GROUP, layer, f"skip[{source}]")
                values[name] = source in skips[layer]
        return values

    def parse(self, encoding):
        """Splits an encoding into per-layer op indices and per-layer skip sources.

        Returns:
            `(op_indices, skips)`: a tuple of L ints and a tuple of L tuples of
            the earlier layers that feed each layer.
        """
        encoding = checks.encoding("encoding", encoding, self.encoding_length)
        op_indices, skips = [], []
        for layer in range(self.num_layers):
            offset = self.layer_offset(layer)
            op = int(encoding[offset])
            bits = encoding[offset + 1 : offset + 1 + layer]
            if not 0 <= op < len(MACRO_OPS) or np.any((bits != 0) & (bits != 1)):
                raise ValueError(
                    f"Layer {layer} of encoding {encoding.tolist()} is invalid: the op must be "
                    f"in [0, {len(MACRO_OPS)}) and skip bits 0 or 1."
                )
            op_indices.append(op)
            skips.append(tuple(int(source) for source in np.flatnonzero(bits)))
        return tuple(op_indices), tuple(skips)

    def random_encoding(self, seed=None):
        """A uniformly random architecture, encoded (ops uniform, skips fair coins)."""
        rng = np.random.default_rng(seed)
        encoding = rng.integers(0, 2, size=self.encoding_length).astype(np.int32)
        for layer in range(self.num_layers):
            encoding[self.layer_offset(layer)] = rng.integers(len(MACRO_OPS))
        return encoding

    def stored_output_needed(self, skips, reduction, source):
        """Whether layer `source`'s output must be reduced at reduction `reduction`."""
        position = self.reduction_positions[reduction]
        return source == position or any(
            source in skips[later] for later in range(position + 1, self.num_layers)
        )

    # Layer factories: the child and the supernet use the same ones, so their
    # layers share names and configurations.

    def make_stem(self, dtype=None):
        return ops.ConvBN(
            self.filters, 3, strides=self.stem_strides, l2=self.l2, dtype=dtype, name=self.block_name("stem")
        )

    def make_op(self, layer, op_index, dtype=None):
        op = MACRO_OPS[op_index]
        name = self.block_name("op", layer=layer, op=op)
        if op.endswith("pool3x3"):
            return ops.MacroPool(self.filters, op[:3], l2=self.l2, dtype=dtype, name=name)
        return ops.MacroConv(
            self.filters,
            int(op[-1]),
            separable=op.startswith("sep"),
            l2=self.l2,
            dtype=dtype,
            name=name,
        )

    def make_skip_norm(self, layer, dtype=None):
        return ops.BatchNorm(dtype=dtype, name=self.block_name("skip_norm", layer=layer))

    def make_reduction(self, reduction, source, dtype=None):
        return ops.FactorizedReduction(
            self.filters,
            l2=self.l2,
            dtype=dtype,
            name=self.block_name("reduction", reduction=reduction, source=source),
        )

    def build_child(self, architecture, compile=True):
        """The standalone child of an architecture.

        Args:
            architecture: an encoding, a `keras_tuner.HyperParameters` or a
                `{name: value}` mapping.
            compile: compile the model with the space's optimizer settings.

        Returns:
            A functional `keras.Model` mapping images to class probabilities.
        """
        op_indices, skips = self.parse(self.as_encoding(architecture))
        inputs = keras.Input(self.input_shape, name="images")
        x = self.make_stem()(inputs)
        outputs = []
        for layer in range(self.num_layers):
            y = self.make_op(layer, op_indices[layer])(x)
            if layer > 0:
                if skips[layer]:
                    parts = [y] + [outputs[source] for source in skips[layer]]
                    y = layers.Add(name=self.block_name("skip_sum", layer=layer))(parts)
                y = self.make_skip_norm(layer)(y)
            outputs.append(y)
            x = y
            if layer in self.reduction_positions:
                reduction = self.reduction_positions.index(layer)
                for source in range(layer + 1):
                    if self.stored_output_needed(skips, reduction, source):
                        outputs[source] = self.make_reduction(reduction, source)(outputs[source])
                x = outputs[layer]
        return self.finish_child(inputs, x, compile)
