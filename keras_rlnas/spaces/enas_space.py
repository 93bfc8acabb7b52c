"""What the ENAS macro and micro spaces share: settings, encodings, head and build."""

from collections.abc import Mapping

import keras
import keras_tuner
import numpy as np
from keras import layers

from keras_rlnas import _checks as checks
from keras_rlnas.training import TrainingOptions


class ENASSpace(keras_tuner.HyperModel):
    """Base of `ENASMacro` and `ENASMicro`: a HyperModel whose architectures are int32 vectors.

    A subclass declares its hyperparameters (`declare_hyperparameters`),
    converts between values and encodings (`encode`, `decode`, `parse`,
    `random_encoding`, `encoding_length`) and builds children
    (`build_child`); the supernet of the space uses the same layer factories
    and layer names (`block_name`, `parse_block_name`) and reads the
    controller's samples as encodings (`encoding_from_actions`). A space
    with other settings (a wider final network, another schedule) is a new
    space built from this one's config (`with_options`).

    The constructor's arguments are the settings the subclasses document:
    image shape, class count, first-stage width, dropout, L2 factor, the
    children's optimizer (`keras_rlnas.training.TrainingOptions`) and the
    stem's stride.
    """

    #: Whether the head starts with a ReLU (the cells end in batch norm).
    head_relu = False
    #: The `BlockNames` of the subclass's layers.
    BLOCK_NAMES = None
    #: Controller steps that record a position without choosing (see `encoding_from_actions`).
    anchor_steps = frozenset()

    def __init__(
        self,
        input_shape,
        num_classes,
        filters,
        dropout,
        l2,
        learning_rate,
        min_learning_rate,
        restart_period,
        restart_multiplier,
        momentum,
        steps_per_epoch,
        name,
        tunable,
        stem_strides=1,
    ):
        super().__init__(name=name, tunable=tunable)
        self.input_shape = checks.image_shape("input_shape", input_shape)
        self.stem_strides = checks.positive_int("stem_strides", stem_strides)
        # Both spaces halve the map twice after the stem. On a 1x1 map the
        # last stage's 3x3 and 5x5 convolutions and pools all act as 1x1
        # ones: its choices would be indistinguishable.
        last_map = [self.last_map_size(size) for size in self.input_shape[:2]]
        if min(last_map) < 2:
            raise ValueError(
                f"`input_shape` {self.input_shape} is too small for a stem of stride {self.stem_strides} and "
                f"the space's two 2x reductions, which leave a {last_map[0]}x{last_map[1]} map; the last "
                "map needs to be at least 2x2 (`stem_strides=1` needs 5x5 images)."
            )
        self.num_classes = checks.positive_int("num_classes", num_classes, minimum=2)
        self.filters = checks.positive_int("filters", filters, minimum=2)
        self.dropout = checks.fraction("dropout", dropout)
        self.l2 = checks.non_negative_float("l2", l2)
        self.training = TrainingOptions(
            learning_rate=learning_rate,
            min_learning_rate=min_learning_rate,
            restart_period=restart_period,
            restart_multiplier=restart_multiplier,
            momentum=momentum,
            steps_per_epoch=steps_per_epoch,
        )

    def last_map_size(self, size):
        """The height (or width) of the last stage's map for an input of `size` pixels."""
        after_stem = -(-size // self.stem_strides)
        return (after_stem + 3) // 4

    def block_name(self, kind, **fields):
        """The name of a layer of this space's children and supernet (`BLOCK_NAMES`).

        Example:

        >>> from keras_rlnas.spaces import ENASMacro
        >>> ENASMacro((8, 8, 1), num_classes=3, num_layers=3).block_name("op", layer=1, op="conv5x5")
        'layer1_conv5x5'
        """
        return self.BLOCK_NAMES.format(kind, **fields)

    def parse_block_name(self, name):
        """`(kind, fields)` of a name made by `block_name`, or `None` for any other name."""
        return self.BLOCK_NAMES.parse(name)

    def encoding_from_actions(self, actions):
        """The encoding of an architecture sampled by a controller over this space.

        The controller makes the decisions that `DecisionMap` derives from
        `declare_hyperparameters`, in the same order: one per Choice, one per
        position for all of its skip Booleans (a tuple of bits) and an
        anchor step (action 0) before them for each earlier position without
        a decision of its own, or closing a cell's node (`anchor_steps`). A
        Choice's action indexes its values, which the subclasses declare in
        the order of their encodings (`ENASMicro` reorders each node's four).
        So the encoding is the actions without the anchors, skip bits spread
        out: the same as `encode` of the sampled values, without building them.

        Args:
            actions: `Sample.actions` of a controller on this space's decisions.

        Returns:
            A `np.ndarray` of `encoding_length` int32 entries.
        """
        anchors = self.anchor_steps
        encoding = []
        for step, action in enumerate(actions):
            if step in anchors:
                continue
            if isinstance(action, tuple):
                encoding.extend(action)
            else:
                encoding.append(action)
        return checks.encoding("actions", encoding, self.encoding_length)

    @property
    def op_positions(self):
        """Indices of the encoding's op choices (each one of `OPS`); the subclasses define them."""
        raise NotImplementedError

    def from_reference_encoding(self, arc):
        """This space's encoding of an architecture the ENAS reference code wrote (a `fixed_arc`).

        The layout is the same, but the reference code numbers the ops in
        another order (`REFERENCE_OPS`), so a published architecture passed
        as an encoding unchanged would build another network.

        Args:
            arc: the reference code's integer vector.

        Returns:
            The int32 encoding of the same architecture here.

        Raises:
            ValueError: a vector of the wrong length or an op index the reference does not have.
        """
        encoding = checks.encoding("arc", arc, self.encoding_length).copy()
        for position in self.op_positions:
            if not 0 <= encoding[position] < len(self.REFERENCE_OPS):
                raise ValueError(
                    f"`arc` has op index {int(encoding[position])} at position {position}; the reference code's "
                    f"ops are 0..{len(self.REFERENCE_OPS) - 1}: {self.REFERENCE_OPS}."
                )
            encoding[position] = self.OPS.index(self.REFERENCE_OPS[encoding[position]])
        self.parse(encoding)  # The rest of the vector must be valid here too.
        return encoding

    def fair_encodings(self, seed=None):
        """`len(OPS)` random architectures that pick every op of every op choice once.

        FairNAS's strict fairness (Chu et al., 2021): a supernet step on the
        summed gradients of these children (`Supernet.fair_train_step`) trains
        every op of every position on the same minibatch, where a uniform
        child per step trains each op only in expectation. Each op choice is a
        random permutation of `OPS` down the children; the other choices
        (skips, inputs) are drawn as `random_encoding` draws them.

        Args:
            seed: seed of the draws (`None`: fresh entropy).

        Returns:
            An int32 array of shape `(len(OPS), encoding_length)`.

        Example:

        >>> from keras_rlnas.spaces import ENASMacro
        >>> space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3)
        >>> children = space.fair_encodings(seed=0)
        >>> children.shape
        (6, 6)
        >>> sorted(children[:, space.layer_offset(2)].tolist())
        [0, 1, 2, 3, 4, 5]
        """
        rng = np.random.default_rng(seed)
        count = len(self.OPS)
        encodings = np.stack([self.random_encoding(int(rng.integers(2**31))) for _ in range(count)])
        for position in self.op_positions:
            encodings[:, position] = rng.permutation(count)
        return encodings.astype(np.int32)

    def as_encoding(self, architecture):
        """An encoding, hyperparameters or a value mapping, as an encoding."""
        if isinstance(architecture, (keras_tuner.HyperParameters, Mapping)):
            return self.encode(architecture)
        return checks.encoding("architecture", architecture, self.encoding_length)

    def values_from_encoding(self, encoding):
        """The `{name: value}` hyperparameter values of an encoded architecture (`decode`)."""
        return self.decode(encoding)

    def get_config(self):
        """The constructor arguments of the space (plain JSON)."""
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "filters": self.filters,
            "dropout": self.dropout,
            "l2": self.l2,
            **self.training.schedule_arguments(),
            "momentum": self.training.momentum,
            "steps_per_epoch": self.training.steps_per_epoch,
            "name": self.name,
            "tunable": self.tunable,
            "stem_strides": self.stem_strides,
        }

    @classmethod
    def from_config(cls, config):
        """The space of a `get_config()`."""
        return cls(**config)

    def with_options(self, **overrides):
        """A new space like this one, with some constructor options changed.

        Args:
            **overrides: constructor arguments and their new values.

        Returns:
            A space of the same class; this one is left unchanged.

        Example:

        >>> from keras_rlnas.spaces import ENASMacro
        >>> space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4)
        >>> wide = space.with_options(filters=12)
        >>> (space.filters, wide.filters, wide.num_layers)
        (4, 12, 3)
        """
        config = self.get_config()
        unknown = sorted(set(overrides) - set(config))
        if unknown:
            raise ValueError(
                f"Unknown option(s) {unknown} for {type(self).__name__}; its options are {sorted(config)}."
            )
        return type(self).from_config({**config, **overrides})

    def build(self, hp):
        """Declares the architecture in `hp` and returns its compiled standalone child."""
        return self.build_child(self.declare_hyperparameters(hp))

    def make_head(self, dtype=None):
        """The classifier: (ReLU,) global average pooling, dropout, dense softmax."""
        relu = [layers.ReLU(dtype=dtype, name="head_relu")] if self.head_relu else []
        return relu + [
            layers.GlobalAveragePooling2D(dtype=dtype, name="head_pool"),
            layers.Dropout(self.dropout, dtype=dtype, name="head_dropout"),
            layers.Dense(
                self.num_classes,
                kernel_regularizer=keras.regularizers.L2(self.l2) if self.l2 else None,
                dtype=dtype,
                name="head_dense",
            ),
            layers.Activation("softmax", dtype="float32", name="probabilities"),
        ]

    def finish_child(self, inputs, features, compile, extra_outputs=(), auxiliary_weight=0.0):
        """The child model: `features` through the head; compiled when `compile`."""
        x = features
        for head_layer in self.make_head():
            x = head_layer(x)
        outputs = [x, *extra_outputs] if extra_outputs else x
        model = keras.Model(inputs, outputs, name=f"{self.name}_child")
        return self.training.compile(model, auxiliary_weight) if compile else model
