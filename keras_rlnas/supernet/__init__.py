"""ENAS shared-weight supernets and the layers their children are made of."""

from keras_rlnas.supernet.base import Supernet, SupernetModel
from keras_rlnas.supernet.macro import MacroSupernet, MacroSupernetModel
from keras_rlnas.supernet.micro import MicroSupernet, MicroSupernetModel
from keras_rlnas.supernet.training import (
    CosineWarmRestarts,
    TrainingOptions,
    cosine_restart_learning_rate,
)


def build_supernet(space, **kwargs):
    """The supernet of `space` (`ENASMacro` or `ENASMicro`), with `Supernet` options."""
    from keras_rlnas.spaces.enas_macro import ENASMacro

    supernet_class = MacroSupernet if isinstance(space, ENASMacro) else MicroSupernet
    return supernet_class(space, **kwargs)


__all__ = [
    "CosineWarmRestarts",
    "MacroSupernet",
    "MacroSupernetModel",
    "MicroSupernet",
    "MicroSupernetModel",
    "Supernet",
    "SupernetModel",
    "TrainingOptions",
    "build_supernet",
    "cosine_restart_learning_rate",
]
