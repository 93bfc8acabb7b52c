"""Tuners: Keras Tuner searches driven by the controller."""

from keras_rlnas.tuners.rl_search import RLSearch

__all__ = ["RLSearch"]
