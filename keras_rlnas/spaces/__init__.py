"""Search spaces: Keras Tuner HyperModels whose hyperparameters describe architectures."""

from keras_rlnas.spaces import structured
from keras_rlnas.spaces.enas_macro import ENASMacro
from keras_rlnas.spaces.enas_micro import ENASMicro
from keras_rlnas.spaces.vanilla import DepthCurriculum, VanillaNAS

__all__ = ["DepthCurriculum", "ENASMacro", "ENASMicro", "VanillaNAS", "structured"]
