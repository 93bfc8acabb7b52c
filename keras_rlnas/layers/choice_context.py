"""What choice layers read: the `hp` of a weight-sharing build, and the architecture of a supernet's step.

`keras_rlnas.layers.choice` holds the layers; a supernet (`keras_rlnas.supernet.ChoiceSupernet`)
builds its network with a `SupernetHyperParameters` and runs each step inside an
`architecture_scope` holding the int32 architecture tensor.
"""

import contextlib
import threading

import keras_tuner
from keras import ops

_scope = threading.local()


class SupernetHyperParameters(keras_tuner.HyperParameters):
    """The `hp` of a weight-sharing build: choice layers keep every candidate.

    Every choice layer constructed with it is recorded in `choices`, in
    construction order; a name used twice is refused. Choices declare their
    hyperparameters in it too (a `LayerChoice` when constructed, an
    `InputChoice` when called), so the build function can read them; they
    and the other hyperparameters take their defaults or the values set in
    `values`.

    Example:

    >>> import keras
    >>> from keras_rlnas.layers.choice import LayerChoice
    >>> hp = SupernetHyperParameters()
    >>> choice = LayerChoice([keras.layers.Dense(2), keras.layers.Dense(2)], name="head", hp=hp)
    >>> [c.name for c in hp.choices]
    ['head']
    """

    def __init__(self):
        super().__init__()
        self.choices = []

    def register(self, layer):
        """Records a choice layer; raises `ValueError` for a name already recorded."""
        for known in self.choices:
            if known.name == layer.name:
                raise ValueError(
                    f"Two choices are named {layer.name!r} ({type(known).__name__} and {type(layer).__name__}): "
                    "each choice is one hyperparameter and needs a name of its own."
                )
        self.choices.append(layer)


class ArchitectureScope:
    """The architecture the choice layers read inside a supernet's step.

    Args:
        arch: an int32 vector, one entry per decision.
        offsets: `{(choice name, slot): index into arch}`.
        building: run every candidate (to create all variables) and return
            the first.
        live: `{LayerChoice name: bool scalar tensor}`: whether the choice's
            output reaches the model's output in this architecture; a choice
            that is not live computes nothing (zeros), as the child, which
            does not hold it, computes nothing. Absent names are live.
    """

    def __init__(self, arch, offsets, building=False, live=None):
        self.arch = arch
        self.offsets = offsets
        self.building = building
        self.live = dict(live or {})
        self.penalties = []

    def index(self, name, slot=0):
        """The decision of slot `slot` of choice `name`, an int32 scalar tensor."""
        key = (name, slot)
        if key not in self.offsets:
            raise ValueError(
                f"The architecture has no decision for choice {name!r} (slot {slot}); "
                f"it knows {sorted({n for n, _ in self.offsets})}."
            )
        return self.arch[self.offsets[key]]

    @property
    def penalty(self):
        """The summed regularisation penalties of the chosen candidates (float32 scalar)."""
        if not self.penalties:
            return ops.zeros((), "float32")
        return ops.sum(ops.stack(self.penalties))


@contextlib.contextmanager
def architecture_scope(arch, offsets, building=False, live=None):
    """Context in which choice layers apply the candidates that `arch` chooses.

    Yields the `ArchitectureScope` (see its arguments), whose `penalty` holds
    the regulariser penalties of the candidates applied.
    """
    previous = getattr(_scope, "current", None)
    _scope.current = ArchitectureScope(arch, offsets, building, live)
    try:
        yield _scope.current
    finally:
        _scope.current = previous


def current_scope():
    """The innermost `architecture_scope`, or `None`."""
    return getattr(_scope, "current", None)


def regularization_penalty(layer):
    """The float32 sum of the weight-regulariser penalties of `layer`'s trainable weights."""
    penalties = [
        ops.cast(variable.regularizer(variable), "float32")
        for variable in layer.trainable_weights
        if getattr(variable, "regularizer", None) is not None
    ]
    return ops.sum(ops.stack(penalties)) if penalties else ops.zeros((), "float32")


__all__ = [
    "ArchitectureScope",
    "SupernetHyperParameters",
    "architecture_scope",
    "current_scope",
    "regularization_penalty",
]
