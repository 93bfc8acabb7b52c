"""`ChoiceSpace`: a user's `build(hp)` with choice layers, seen as an ENAS space.

The build function is called once with a `SupernetHyperParameters`: its
`LayerChoice` / `InputChoice` layers then keep every candidate, and that
model is the supernet's network. Each choice becomes one or more decisions
(one per `LayerChoice`, one per `InputChoice` slot) in construction order;
an architecture is the int32 vector of the decisions' value indices, as in
the ENAS spaces. A child is the same function called with an ordinary
`keras_tuner.HyperParameters` holding the architecture's values, so it is
exactly what `RandomSearch` would build, with no choice layer left in it.

Layers the build function leaves unnamed get Keras's automatic names. Every
build runs with fresh name counters, so the supernet and each child name
their layers alike, and weights copy between them by layer name.
"""

import collections
import contextlib
import dataclasses
from collections.abc import Mapping

import keras
import keras_tuner
import numpy as np

from keras_rlnas import _checks as checks
from keras_rlnas.decision_map import DecisionMap
from keras_rlnas.layers.choice import InputChoice, LayerChoice
from keras_rlnas.layers.choice_context import SupernetHyperParameters

HP = keras_tuner.engine.hyperparameters


@dataclasses.dataclass(frozen=True)
class Slot:
    """One decision of a `ChoiceSpace`: a Choice hyperparameter and the choice layer it configures."""

    name: str
    values: tuple
    default: object
    layer: str
    index: int = 0


@contextlib.contextmanager
def fresh_layer_names():
    """Context in which Keras's automatic layer names start again from `conv2d`, `dense`, ...

    Two builds of one function inside it name their layers alike, whatever
    was built before.
    """
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # A Keras without this module: automatic names just keep counting.
        yield
        return
    saved = global_state.get_global_attribute("object_name_uids")
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute("object_name_uids", saved)


def choice_layers(model):
    """The `LayerChoice` / `InputChoice` layers of `model`, nested models included."""
    found = []
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, (LayerChoice, InputChoice)):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(choice_layers(layer))
    return found


def _refuse_nested_choices(choices):
    for layer in choices:
        for label, candidate in zip(getattr(layer, "labels", ()), getattr(layer, "candidates", ())):
            inner = [candidate] if isinstance(candidate, (LayerChoice, InputChoice)) else choice_layers(candidate)
            if inner:
                raise ValueError(
                    f"Candidate {label!r} of LayerChoice {layer.name!r} holds the choice {inner[0].name!r}: a "
                    "weight-sharing search does not support choices inside choices. Make them one choice over "
                    "the combinations, or search this space with RLSearch."
                )


def _hypermodel_build(hypermodel):
    if isinstance(hypermodel, keras_tuner.HyperModel):
        return hypermodel.build, hypermodel.name or type(hypermodel).__name__
    if callable(hypermodel):
        return hypermodel, getattr(hypermodel, "__name__", "custom")
    raise TypeError(f"`hypermodel` must be a function build(hp) -> model or a keras_tuner.HyperModel, got {hypermodel!r}.")


def _other_value(hp):
    """A value of a plain hyperparameter other than its default, or `None` if it has one value."""
    if isinstance(hp, HP.Boolean):
        return not hp.default
    if isinstance(hp, HP.Choice):
        others = [value for value in hp.values if value != hp.default]
        return others[-1] if others else None
    if isinstance(hp, (HP.Int, HP.Float)):
        return hp.max_value if hp.default != hp.max_value else hp.min_value
    return None


def _output_layer(model):
    """The layer that makes `model`'s output (its last layer when the graph does not say)."""
    history = getattr(model.outputs[0], "_keras_history", None) if getattr(model, "outputs", None) else None
    if history is not None:
        return history[0]
    return model.layers[-1] if getattr(model, "layers", None) else None


def _gives_probabilities(layer):
    """Whether `layer`'s output is a softmax, looking into nested models and the candidates of a choice."""
    if isinstance(layer, keras.layers.Softmax):
        return True
    if isinstance(layer, LayerChoice):
        verdicts = {label: _gives_probabilities(candidate) for label, candidate in zip(layer.labels, layer.candidates)}
        if len(set(verdicts.values())) > 1:
            softmax = [label for label, verdict in verdicts.items() if verdict]
            raise ValueError(
                f"The candidates of LayerChoice {layer.name!r}, which makes the model's output, disagree: {softmax} "
                f"end in a softmax, the others give logits. Every child must give the same kind of class scores."
            )
        return next(iter(verdicts.values()))
    if isinstance(layer, keras.Model):
        return _gives_probabilities(_output_layer(layer))
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


class ChoiceSpace:
    """The ENAS space of a model-building function or HyperModel that uses choice layers.

    Args:
        hypermodel: `build(hp) -> keras.Model` or a `keras_tuner.HyperModel`
            whose model takes one input (images `(height, width, channels)`
            or any other shape) and gives class scores (probabilities after
            a softmax, or logits), with `hp=hp` passed to its `LayerChoice`
            and `InputChoice` layers. Other hyperparameters keep their
            defaults in a weight-sharing search.

    Raises:
        ValueError: two choices share a name; candidates of one choice give
            different shapes, or some probabilities and others logits; a
            candidate holds a choice; the model has no choice; the set of
            choices depends on another hyperparameter.

    Example:

    >>> import keras
    >>> from keras_rlnas.layers import InputChoice, LayerChoice
    >>> def build(hp):
    ...     images = keras.Input((8, 8, 1))
    ...     a = keras.layers.Conv2D(4, 3, padding="same")(images)
    ...     b = LayerChoice([keras.layers.Conv2D(4, 3, padding="same"), keras.layers.MaxPooling2D(3, 1, "same")],
    ...                     name="op", hp=hp)(a)
    ...     x = InputChoice(name="skip", hp=hp)([a, b])
    ...     x = keras.layers.GlobalAveragePooling2D()(x)
    ...     return keras.Model(images, keras.layers.Dense(3, activation="softmax")(x))
    >>> space = ChoiceSpace(build)
    >>> [slot.name for slot in space.slots]
    ['op', 'skip[2].input[0]']
    >>> space.decode([1, 0])
    {'op': 1, 'skip[2].input[0]': 0}
    >>> [layer.name for layer in space.build_child([1, 1]).layers][-3:]
    ['max_pooling2d', 'global_average_pooling2d', 'dense']
    """

    #: Regularisation comes from the user's layers' own regularizers.
    l2 = 0.0

    def __init__(self, hypermodel):
        self.hypermodel = hypermodel
        self._build, name = _hypermodel_build(hypermodel)
        self.name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
        hp = SupernetHyperParameters()
        self.network = self._build_network(hp)
        self.choices = self._recorded_choices(hp, self.network)
        self.slots = self._slots(self.choices)
        self.offsets = {(slot.layer, slot.index): i for i, slot in enumerate(self.slots)}
        self.plain_hyperparameters = [h for h in hp.space if h.name not in self.offsets_by_name]
        self._check_choices_do_not_vary(hp)
        if not getattr(self.network, "inputs", None):
            raise TypeError(
                f"The model of {self.name!r} has no symbolic inputs: ENAS needs a functional or Sequential model "
                "(built from keras.Input), whose layers a child can be built and copied from."
            )
        if len(self.network.inputs) != 1 or len(self.network.outputs) != 1:
            raise ValueError(
                f"The model of {self.name!r} has {len(self.network.inputs)} inputs and {len(self.network.outputs)} "
                "outputs; ENAS trains a model with one image input and one class-score output."
            )
        self.input_shape = tuple(self.network.inputs[0].shape[1:])
        self.num_classes = int(self.network.outputs[0].shape[-1])
        self.outputs_probabilities = _gives_probabilities(_output_layer(self.network))
        declared = keras_tuner.HyperParameters()
        self.declare_hyperparameters(declared)
        decisions = DecisionMap()
        decisions.sync(declared)
        self.anchor_steps = frozenset(i for i, d in enumerate(decisions.decisions) if not d.chooses)

    # ----------------------------------------------------------------- building
    def build_network(self):
        """A fresh model with every candidate (built in the current `tf.distribute` scope), for a supernet."""
        hp = SupernetHyperParameters()
        network = self._build_network(hp)
        if self._signature(self._recorded_choices(hp, network)) != self._signature(self.choices):
            raise ValueError(f"The build function of {self.name!r} gave other choices on a second call.")
        return network

    def _build_network(self, hp):
        with fresh_layer_names():
            model = self._build(hp)
        if not isinstance(model, keras.Model):
            raise TypeError(f"The build function of {self.name!r} must return a keras.Model, got {model!r}.")
        return model

    def _recorded_choices(self, hp, model):
        in_model = choice_layers(model)
        _refuse_nested_choices(in_model)
        choices = list(hp.choices) + [layer for layer in in_model if all(layer is not c for c in hp.choices)]
        if not choices:
            raise ValueError(
                f"The model of {self.name!r} has no LayerChoice or InputChoice: a weight-sharing search has nothing "
                "to choose. Put choice layers in it (with hp=hp), or search it with RLSearch / RandomSearch."
            )
        names = collections.Counter(layer.name for layer in choices)
        repeated = sorted(name for name, count in names.items() if count > 1)
        if repeated:
            raise ValueError(f"Two choices are named {repeated[0]!r}: each choice needs a name of its own.")
        for layer in choices:
            if all(layer is not c for c in in_model):
                raise ValueError(
                    f"{type(layer).__name__} {layer.name!r} was created but is not part of the model: a choice "
                    "whose output is not used cannot be trained or searched."
                )
        return choices

    @staticmethod
    def _slots(choices):
        slots = []
        for layer in choices:
            if isinstance(layer, LayerChoice):
                slots.append(Slot(layer.name, tuple(layer.labels), layer.labels[0], layer.name))
            else:
                values = tuple(range(layer.num_candidates))
                for index, name in enumerate(layer.slot_names):
                    slots.append(Slot(name, values, values[-1], layer.name, index))
        return slots

    @property
    def offsets_by_name(self):
        """`{hyperparameter name: index into the encoding}`."""
        return {slot.name: i for i, slot in enumerate(self.slots)}

    def _signature(self, choices):
        return [(type(c).__name__, c.name, tuple(getattr(c, "labels", ())), getattr(c, "num_candidates", None)) for c in choices]

    def _check_choices_do_not_vary(self, declared):
        """Refuses a model whose choices change with another hyperparameter's or choice's value."""
        others = {h.name: _other_value(h) for h in declared.space}
        others = {name: value for name, value in others.items() if value is not None}
        if not others:
            return
        hp = SupernetHyperParameters()
        hp.values.update(others)
        model = self._build_network(hp)
        varied = self._recorded_choices(hp, model)
        if self._signature(varied) != self._signature(self.choices):
            names = [c.name for c in self.choices]
            varied_names = [c.name for c in varied]
            raise ValueError(
                f"The choices of {self.name!r} depend on hyperparameter values: with the defaults the model has "
                f"{names}, with {others} it has {varied_names}. Weight sharing needs one fixed set of choices; "
                "declare every choice whatever the other values (e.g. a LayerChoice including keras.layers.Identity() "
                "instead of a loop whose length is a hyperparameter)."
            )

    def build_child(self, architecture, compile=True):
        """The standalone model of an architecture: the build function with its values.

        Args:
            architecture: an encoding, a `keras_tuner.HyperParameters` or a
                `{name: value}` mapping.
            compile: unused; the child is compiled as the build function compiles it.

        Returns:
            The `keras.Model` the build function returns for these values; it
            holds no choice layer.
        """
        hp = keras_tuner.HyperParameters()
        hp.values.update(self.decode(self.as_encoding(architecture)))
        with fresh_layer_names():
            model = self._build(hp)
        left = choice_layers(model)
        if left:
            raise ValueError(
                f"{type(left[0]).__name__} {left[0].name!r} of {self.name!r} was created without hp=hp, so the "
                "child still holds every candidate; pass the build function's hp to every choice layer."
            )
        declared = {h.name for h in hp.space}
        known = {slot.name for slot in self.slots} | {h.name for h in self.plain_hyperparameters}
        missing = sorted({slot.name for slot in self.slots} - declared)
        extra = sorted(declared - known)
        if missing or extra:
            raise ValueError(
                f"The child of {self.decode(self.as_encoding(architecture))} declares {extra} and not {missing}, "
                f"unlike the supernet of {self.name!r}: its choices depend on the values of other choices."
            )
        return model

    # ---------------------------------------------------------------- encodings
    @property
    def encoding_length(self):
        """How many decisions an architecture makes."""
        return len(self.slots)

    def declare_hyperparameters(self, hp):
        """Declares every decision's Choice in `hp` and returns the encoding of its values."""
        for slot in self.slots:
            hp.Choice(slot.name, list(slot.values), default=slot.default)
        return self.encode(hp)

    def encode(self, values):
        """The int32 vector of an architecture given as hyperparameter values."""
        values = checks.values_of(values)
        encoding = []
        for slot in self.slots:
            value = checks.lookup(values, slot.name)
            if value not in slot.values:
                raise ValueError(f"`{slot.name}` must be one of {list(slot.values)}, got {value!r}.")
            encoding.append(slot.values.index(value))
        return np.asarray(encoding, np.int32)

    def decode(self, encoding):
        """The `{name: value}` hyperparameter values of an encoded architecture."""
        encoding = checks.encoding("encoding", encoding, self.encoding_length)
        values = {}
        for slot, index in zip(self.slots, encoding):
            if not 0 <= index < len(slot.values):
                raise ValueError(f"Entry {int(index)} for `{slot.name}` is out of range: it has {len(slot.values)} values.")
            values[slot.name] = slot.values[int(index)]
        return values

    values_from_encoding = decode

    def as_encoding(self, architecture):
        """An encoding, hyperparameters or a value mapping, as an encoding."""
        if isinstance(architecture, (keras_tuner.HyperParameters, Mapping)):
            return self.encode(architecture)
        return checks.encoding("architecture", architecture, self.encoding_length)

    def random_encoding(self, seed=None):
        """A uniformly random architecture, encoded."""
        rng = np.random.default_rng(seed)
        return np.asarray([rng.integers(len(slot.values)) for slot in self.slots], np.int32)

    def encoding_from_actions(self, actions):
        """The encoding of a controller's sample: its actions without the anchor steps."""
        encoding = [action for step, action in enumerate(actions) if step not in self.anchor_steps]
        return checks.encoding("actions", encoding, self.encoding_length)


__all__ = ["ChoiceSpace", "Slot", "choice_layers", "fresh_layer_names"]
