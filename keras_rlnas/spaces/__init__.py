"""Search spaces: Keras Tuner HyperModels whose hyperparameters describe architectures."""

from keras_rlnas.spaces import structured
from keras_rlnas.spaces.vanilla import DepthCurriculum, VanillaNAS  # noqa: F401
