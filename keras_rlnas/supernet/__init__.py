"""ENAS shared-weight supernets.

A supernet trains every child of an `ENASMacro` / `ENASMicro` space, or of a
model built with `LayerChoice` / `InputChoice` (`ChoiceSupernet`), at once.
The architecture is an int32 tensor (`space.encode(values)`), so one traced
train step and one traced eval step serve every architecture.

Example:

>>> import numpy as np
>>> from keras_rlnas.spaces import ENASMacro
>>> space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4)
>>> net = build_supernet(space)
>>> images, labels = np.random.rand(4, 8, 8, 1), np.array([0, 1, 2, 0])
>>> net.set_epoch(0)
>>> for seed in range(3):  # omega phase: a fresh architecture every minibatch
...     _ = net.train_step(images, labels, space.random_encoding(seed))
>>> accuracy = net.eval_step(images, labels, space.random_encoding(7))  # theta phase
>>> values = space.decode(space.random_encoding(7))
>>> child = net.copy_weights_to(space.build_child(values), values)
>>> state = net.get_state()  # or net.save(path) / net.load(path)
"""

import inspect

from keras_rlnas.layers.batch_norm import BatchNorm, frozen_moving_statistics
from keras_rlnas.spaces import ENASMacro
from keras_rlnas.supernet.base import Supernet
from keras_rlnas.supernet.custom import ChoiceSupernet, ChoiceSupernetModel
from keras_rlnas.supernet.custom_space import ChoiceSpace
from keras_rlnas.supernet.few_shot import ConvCountGroups, FewShotSupernets
from keras_rlnas.supernet.macro import MacroSupernet, MacroSupernetModel
from keras_rlnas.supernet.micro import MicroSupernet, MicroSupernetModel
from keras_rlnas.supernet.model import SupernetModel
from keras_rlnas.training import (
    CosineWarmRestarts,
    NesterovSGD,
    TrainingOptions,
    cosine_restart_learning_rate,
)


def supernet_class(space):
    """The supernet class of `space` (`ENASMacro`, `ENASMicro` or `ChoiceSpace`)."""
    if isinstance(space, ChoiceSpace):
        return ChoiceSupernet
    return MacroSupernet if isinstance(space, ENASMacro) else MicroSupernet


def build_supernet(space, **kwargs):
    """The supernet of `space` (`ENASMacro`, `ENASMicro` or `ChoiceSpace`), with `Supernet` options."""
    check_options(space, kwargs)
    return supernet_class(space)(space, **kwargs)


def check_options(space, options):
    """A `TypeError` naming any of `options` that the supernet of `space` does not take."""
    known = set()
    for cls in supernet_class(space).__mro__:
        if "__init__" in vars(cls):
            parameters = inspect.signature(vars(cls)["__init__"]).parameters.values()
            known |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    known -= {"self", "space", "name"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"Unknown supernet option(s) {unknown}; expected some of {sorted(known)}.")


__all__ = [
    "BatchNorm",
    "ChoiceSpace",
    "ChoiceSupernet",
    "ChoiceSupernetModel",
    "ConvCountGroups",
    "CosineWarmRestarts",
    "FewShotSupernets",
    "MacroSupernet",
    "MacroSupernetModel",
    "MicroSupernet",
    "MicroSupernetModel",
    "NesterovSGD",
    "Supernet",
    "SupernetModel",
    "TrainingOptions",
    "build_supernet",
    "check_options",
    "cosine_restart_learning_rate",
    "frozen_moving_statistics",
    "supernet_class",
]
