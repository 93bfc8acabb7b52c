"""Search spaces: Keras Tuner HyperModels whose hyperparameters describe architectures."""

from keras_rlnas.spaces import structured
