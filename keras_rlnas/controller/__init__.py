"""The RNN controller: an autoregressive LSTM policy trained with REINFORCE."""

from keras_rlnas.controller.controller import Controller
from keras_rlnas.controller.decisions import Decision
from keras_rlnas.controller.options import PRESETS
from keras_rlnas.controller.rollout import Rollout, Sample

__all__ = ["Controller", "Decision", "PRESETS", "Rollout", "Sample"]
