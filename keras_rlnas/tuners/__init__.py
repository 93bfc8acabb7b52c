"""Tuners: Keras Tuner searches driven by the controller."""

from keras_rlnas.tuners.enas import ENASTuner
from keras_rlnas.tuners.rl_search import RLSearch
from keras_rlnas.tuners.trial_stopping import MedianStoppingRule

__all__ = ["ENASTuner", "MedianStoppingRule", "RLSearch"]
