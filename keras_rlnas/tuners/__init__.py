"""Tuners: Keras Tuner searches driven by the controller."""

from keras_rlnas.tuners.enas import ENASTuner
from keras_rlnas.tuners.rl_search import RLSearch

__all__ = ["ENASTuner", "RLSearch"]
