"""Search spaces: Keras Tuner HyperModels whose hyperparameters describe architectures."""

from keras_rlnas.spaces import structured  # noqa: F401
from keras_rlnas.spaces.enas_macro import ENASMacro  # noqa: F401
from keras_rlnas.spaces.enas_micro import ENASMicro  # noqa: F401
from keras_rlnas.spaces.vanilla import DepthCurriculum, VanillaNAS  # noqa: F401
