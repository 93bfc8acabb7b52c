"""`LayerChoice` and `InputChoice`: one space definition for standalone and weight-sharing search.

A user writes a model with these layers in a `build(hp)` function and passes
`hp=hp` to each of them:

- With an ordinary `keras_tuner.HyperParameters` (any Keras Tuner tuner:
  `RandomSearch`, `RLSearch`, `Hyperband`), a choice declares its
  hyperparameter and the model gets only the chosen candidate: no choice
  layer is left in it.
- With a `SupernetHyperParameters` (what `ENASTuner` passes), a choice is a
  layer holding every candidate. Inside a supernet's step
  (`architecture_scope`) it reads its decision from an int32 architecture
  tensor and computes only the chosen candidate (`keras.ops.switch`), so one
  traced step serves every architecture.

Hyperparameter names: a `LayerChoice` named `n` declares the Choice `n`
over its candidates' labels; an `InputChoice` named `n` over `m` tensors
declares `n[m].input[k]` for each of its `n_chosen` slots, a Choice over
`0 .. m-1` in the convention of `keras_rlnas.spaces.structured`, so a
controller picks inputs by attention.
"""

import re

import keras
from keras import ops

from keras_rlnas.layers.choice_context import (
    SupernetHyperParameters,
    current_scope,
    regularization_penalty,
)

# A choice's name is a hyperparameter name, for InputChoice the group of a
# structured name, and in a supernet a Keras layer's name, which takes no '/'.
_CHOICE_NAME = re.compile(r"^[A-Za-z_]\w*$")
REDUCTIONS = ("sum", "mean")

_MAX_POOLING = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D)


def apply_candidate(candidate, inputs, training=None):
    """`candidate(inputs)` inside a supernet's branch.

    A max-pooling candidate recomputes its output for its gradient: in a
    branch of a switch the pooling and its gradient sit in different
    functions, where oneDNN cannot pair them, and the unpaired gradient
    kernel costs several times the whole child's step (see
    `keras_rlnas.layers.pooling.max_pool_gradient_recomputed`).
    """
    if not isinstance(candidate, _MAX_POOLING) or keras.backend.backend() != "tensorflow":
        return candidate(inputs, training=training)
    import tensorflow as tf

    @tf.custom_gradient
    def pool(x):
        def gradient(upstream):
            with tf.GradientTape() as tape:
                tape.watch(x)
                again = candidate(x)
            return tape.gradient(again, x, upstream)

        return candidate(x), gradient

    return pool(inputs)


def check_choice_name(kind, name):
    """`name` if it can name a choice's hyperparameter, else a `ValueError` naming it."""
    if not isinstance(name, str) or not _CHOICE_NAME.match(name):
        raise ValueError(
            f"{kind} needs a name of letters, digits and '_' (not starting with a digit): it names "
            f"the choice's hyperparameter and its Keras layer; got name={name!r}."
        )
    return name


def candidate_labels(candidates):
    """`(labels, layers)` of a list (labels 0, 1, ...) or a dict (its string keys) of layers."""
    if isinstance(candidates, dict):
        labels, layers = list(candidates), list(candidates.values())
        if not all(isinstance(label, str) for label in labels):
            raise ValueError(f"The keys of a dict of candidates must be strings, got {labels!r}.")
    elif isinstance(candidates, (list, tuple)):
        labels, layers = list(range(len(candidates))), list(candidates)
    else:
        raise TypeError(f"`candidates` must be a list or a dict of Keras layers, got {type(candidates).__name__}.")
    if not layers:
        raise ValueError("`candidates` is empty: a LayerChoice needs at least one candidate layer.")
    for label, layer in zip(labels, layers):
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(f"Candidate {label!r} must be a Keras layer, got {layer!r}.")
    return labels, layers


def _refuse_redeclared(hp, name, values, kind):
    # Keras Tuner answers a second declaration of a name with the first one's value, whatever its values.
    for declared in hp.space:
        if declared.name == name and list(getattr(declared, "values", ())) != list(values):
            raise ValueError(
                f"{kind} {name!r} would declare the hyperparameter {name!r} over {list(values)!r}, but {name!r} is "
                f"already declared over {list(getattr(declared, 'values', ()))!r}: each choice needs a name of its own."
            )


def declare_layer_choice(hp, name, labels):
    """Declares the Choice of a `LayerChoice` in `hp` and returns the chosen label."""
    _refuse_redeclared(hp, name, labels, "LayerChoice")
    return hp.Choice(name, labels, default=labels[0])


def input_slot_name(name, num_candidates, slot):
    """The structured name of slot `slot` of an `InputChoice` over `num_candidates` tensors.

    Example:

    >>> input_slot_name("skip", 3, 0)
    'skip[3].input[0]'
    """
    return f"{name}[{int(num_candidates)}].input[{int(slot)}]"


def declare_input_choice(hp, name, num_candidates, slot):
    """Declares slot `slot` of an `InputChoice` in `hp` and returns the chosen position."""
    values = list(range(num_candidates))
    slot_name = input_slot_name(name, num_candidates, slot)
    _refuse_redeclared(hp, slot_name, values, "InputChoice")
    return hp.Choice(slot_name, values, default=values[-1])


def _ordinary(hp):
    return hp is not None and not isinstance(hp, SupernetHyperParameters)


def _shape_text(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


@keras.saving.register_keras_serializable(package="keras_rlnas")
class LayerChoice(keras.layers.Layer):
    """One of several candidate layers, chosen by the search.

    With an ordinary `hp` the constructor declares the Choice `name` (values:
    the candidates' labels, default the first) and returns the chosen
    candidate itself, so the model holds no `LayerChoice`. Otherwise it is a
    layer holding every candidate: in a supernet's step it computes only the
    candidate the architecture tensor picks, elsewhere the first. Every
    candidate must give the same output shape.

    Args:
        candidates: a list of Keras layers (labels 0, 1, ...) or a dict
            `{label: layer}` with string labels.
        name: the choice's name, also its hyperparameter's.
        hp: the `keras_tuner.HyperParameters` of `build(hp)`; with a
            `SupernetHyperParameters` or `None` the layer holds every candidate.
        **kwargs: other `keras.layers.Layer` arguments.

    Example:

    >>> import keras
    >>> import keras_tuner
    >>> from keras_rlnas.layers import LayerChoice
    >>> candidates = {"small": keras.layers.Dense(4), "large": keras.layers.Dense(4, activation="relu")}
    >>> hp = keras_tuner.HyperParameters()
    >>> hp.values["head"] = "large"
    >>> layer = LayerChoice(candidates, name="head", hp=hp)
    >>> layer is candidates["large"]
    True
    >>> supernet_layer = LayerChoice([keras.layers.Dense(4), keras.layers.Dense(4)], name="head")
    >>> tuple(supernet_layer(keras.Input((3,))).shape)
    (None, 4)
    """

    def __new__(cls, candidates=None, name=None, hp=None, **kwargs):
        if _ordinary(hp):
            check_choice_name("LayerChoice", name)
            labels, layers = candidate_labels(candidates)
            return layers[labels.index(declare_layer_choice(hp, name, labels))]
        return super().__new__(cls, candidates, name=name, hp=hp, **kwargs)

    def __init__(self, candidates, name=None, hp=None, **kwargs):
        super().__init__(name=check_choice_name("LayerChoice", name), **kwargs)
        self.labels, self.candidates = candidate_labels(candidates)
        self._keyed = isinstance(candidates, dict)
        self._output_shape = None
        self._output_dtype = None
        if hp is not None:
            hp.register(self)
            self.declare(hp)

    def declare(self, hp):
        """Declares this choice's hyperparameter in `hp`; returns the chosen label."""
        return declare_layer_choice(hp, self.name, self.labels)

    def build(self, input_shape):
        # Every candidate is built on a symbolic input, so that its weights
        # exist and its output shape can be compared before any step.
        shapes = []
        for label, candidate in zip(self.labels, self.candidates):
            try:
                output = candidate(keras.KerasTensor(input_shape, dtype=self.compute_dtype))
            except Exception as error:
                raise ValueError(
                    f"Candidate {label!r} of LayerChoice {self.name!r} cannot take the choice's input "
                    f"{_shape_text(input_shape)}: {error}"
                ) from error
            shapes.append(tuple(output.shape))
            self._output_dtype = output.dtype
        if len(set(shapes)) > 1:
            listing = "; ".join(f"{label!r} -> {_shape_text(s)}" for label, s in zip(self.labels, shapes))
            raise ValueError(
                f"The candidates of LayerChoice {self.name!r} give different output shapes for input "
                f"{_shape_text(input_shape)}: {listing}. Every candidate must give the same shape."
            )
        self._output_shape = shapes[0]
        self.built = True

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            self.build(input_shape)
        return self._output_shape

    def call(self, inputs, training=None):
        scope = current_scope()
        if scope is None:
            return self.candidates[0](inputs, training=training)
        if scope.building:
            return [candidate(inputs, training=training) for candidate in self.candidates][0]

        def branch(candidate):
            return lambda x: (apply_candidate(candidate, x, training), regularization_penalty(candidate))

        def nothing(x):
            shape = (ops.shape(x)[0],) + tuple(self._output_shape[1:])
            return ops.zeros(shape, self._output_dtype), ops.zeros((), "float32")

        branches = [branch(c) for c in self.candidates]
        index = scope.index(self.name)
        live = scope.live.get(self.name, True)
        if live is not True:
            # An extra branch for an architecture whose output does not read this choice.
            branches.append(nothing)
            index = ops.where(live, index, len(self.candidates))
        output, penalty = ops.switch(index, branches, inputs)
        scope.penalties.append(penalty)
        return output

    def get_config(self):
        layers = [keras.saving.serialize_keras_object(layer) for layer in self.candidates]
        candidates = dict(zip(self.labels, layers)) if self._keyed else layers
        return {**super().get_config(), "candidates": candidates}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        candidates = config.pop("candidates")
        if isinstance(candidates, dict):
            candidates = {k: keras.saving.deserialize_keras_object(v) for k, v in candidates.items()}
        else:
            candidates = [keras.saving.deserialize_keras_object(v) for v in candidates]
        return cls(candidates, **config)


class _ChosenInputs:
    """What `InputChoice(..., hp=ordinary_hp)` returns: called on tensors, it picks the chosen ones."""

    def __init__(self, n_chosen, reduction, name, hp):
        self.n_chosen, self.reduction, self.name, self.hp = n_chosen, reduction, name, hp
        self.calls = 0

    def __call__(self, inputs):
        inputs = _candidate_tensors(self.name, inputs)
        picked = [inputs[declare_input_choice(self.hp, self.name, len(inputs), slot)] for slot in range(self.n_chosen)]
        if len(picked) == 1:
            return picked[0]
        merge = keras.layers.Add if self.reduction == "sum" else keras.layers.Average
        # A choice used at several places merges at each: one layer name per place.
        self.calls += 1
        suffix = "" if self.calls == 1 else f"_{self.calls}"
        return merge(name=f"{self.name}_{self.reduction}{suffix}")(picked)


def _candidate_tensors(name, inputs):
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise ValueError(f"InputChoice {name!r} is called on a non-empty list of tensors to choose from, got {inputs!r}.")
    return list(inputs)


def _check_input_arguments(n_chosen, reduction):
    if isinstance(n_chosen, bool) or not isinstance(n_chosen, int) or n_chosen < 1:
        raise ValueError(f"`n_chosen` must be an int >= 1, got {n_chosen!r}.")
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}.")


@keras.saving.register_keras_serializable(package="keras_rlnas")
class InputChoice(keras.layers.Layer):
    """Picks `n_chosen` of the tensors it is called on (earlier outputs of the model).

    Each slot picks one candidate (slots may pick the same one, as ENAS
    cells do) and the picks are summed or averaged. Slot `k` of a choice
    named `n` over `m` tensors is the hyperparameter `n[m].input[k]`, a
    Choice over `0 .. m-1` (default `m-1`, the latest), which a controller
    samples by attention. With an ordinary `hp` the constructor returns a
    callable that picks the chosen tensors directly, so the model holds no
    `InputChoice`; otherwise it is a layer that picks by the architecture
    tensor inside a supernet's step, and the last candidate elsewhere.
    Every candidate must have the same shape.

    Args:
        n_chosen: how many inputs are picked.
        reduction: `"sum"` or `"mean"` of the picked inputs.
        name: the choice's name (the group of its hyperparameters' names).
        hp: the `keras_tuner.HyperParameters` of `build(hp)`; with a
            `SupernetHyperParameters` or `None` the layer chooses by the architecture tensor.
        **kwargs: other `keras.layers.Layer` arguments.

    Example:

    >>> import keras
    >>> import keras_tuner
    >>> from keras_rlnas.layers import InputChoice
    >>> a, b, c = (keras.Input((4,)) for _ in range(3))
    >>> hp = keras_tuner.HyperParameters()
    >>> InputChoice(name="skip", hp=hp)([a, b, c]) is c
    True
    >>> list(hp.values)
    ['skip[3].input[0]']
    >>> tuple(InputChoice(n_chosen=2, name="merge")([a, b, c]).shape)
    (None, 4)
    """

    def __new__(cls, n_chosen=1, reduction="sum", name=None, hp=None, **kwargs):
        if _ordinary(hp):
            _check_input_arguments(n_chosen, reduction)
            return _ChosenInputs(n_chosen, reduction, check_choice_name("InputChoice", name), hp)
        return super().__new__(cls, n_chosen, reduction=reduction, name=name, hp=hp, **kwargs)

    def __init__(self, n_chosen=1, reduction="sum", name=None, hp=None, **kwargs):
        super().__init__(name=check_choice_name("InputChoice", name), **kwargs)
        _check_input_arguments(n_chosen, reduction)
        self.n_chosen = n_chosen
        self.reduction = reduction
        self.num_candidates = None
        # Its hyperparameters' names depend on the number of candidates: declared when first called.
        self._supernet_hp = hp
        if hp is not None:
            hp.register(self)

    @property
    def slot_names(self):
        """The hyperparameter names of the slots (known once the layer is called)."""
        return [input_slot_name(self.name, self.num_candidates, slot) for slot in range(self.n_chosen)]

    def declare(self, hp):
        """Declares the slots' hyperparameters in `hp`; returns the chosen positions."""
        return [declare_input_choice(hp, self.name, self.num_candidates, slot) for slot in range(self.n_chosen)]

    def build(self, input_shape):
        if not input_shape or not all(isinstance(shape, (list, tuple)) for shape in input_shape):
            raise ValueError(
                f"InputChoice {self.name!r} is called on a non-empty list of tensors to choose from, got one "
                f"tensor of shape {_shape_text(input_shape or ())}."
            )
        shapes = [tuple(shape) for shape in input_shape]
        if len(set(shapes)) > 1:
            listing = "; ".join(f"{i} -> {_shape_text(s)}" for i, s in enumerate(shapes))
            raise ValueError(
                f"The tensors InputChoice {self.name!r} chooses from have different shapes: {listing}. "
                "Every candidate must have the same shape."
            )
        if self.num_candidates not in (None, len(shapes)):
            raise ValueError(
                f"InputChoice {self.name!r} was called on {self.num_candidates} tensors, then on {len(shapes)}; "
                "each choice chooses among one list."
            )
        self.num_candidates = len(shapes)
        if self._supernet_hp is not None:
            self.declare(self._supernet_hp)
        self.built = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def call(self, inputs, training=None):
        inputs = _candidate_tensors(self.name, inputs)
        scope = current_scope()
        if scope is None or scope.building:
            picked = [inputs[-1]] * self.n_chosen
        else:
            branches = [lambda *xs, i=i: xs[i] for i in range(len(inputs))]
            picked = [ops.switch(scope.index(self.name, slot), branches, *inputs) for slot in range(self.n_chosen)]
        total = picked[0]
        for tensor in picked[1:]:
            total = total + tensor
        return total / len(picked) if self.reduction == "mean" and len(picked) > 1 else total

    def get_config(self):
        return {**super().get_config(), "n_chosen": self.n_chosen, "reduction": self.reduction}


__all__ = [
    "InputChoice",
    "LayerChoice",
    "apply_candidate",
    "candidate_labels",
    "check_choice_name",
    "input_slot_name",
]
