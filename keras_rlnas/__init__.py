"""keras-rlnas: reinforcement-learning neural architecture search for Keras 3.

Public API:
    - `RLSearch`: a `keras_tuner.RandomSearch` replacement driven by a controller.
    - `ControllerOracle`: the oracle behind it, usable with any Keras Tuner tuner.
    - `Controller`, `Decision`: the REINFORCE-trained LSTM policy itself.
    - `DecisionMap`: how a Keras Tuner space becomes controller decisions.
"""

from keras_rlnas import rewards, spaces
from keras_rlnas.controller import Controller, Decision, Sample
from keras_rlnas.decision_map import DecisionMap
from keras_rlnas.oracle import ControllerOracle
from keras_rlnas.tuners import RLSearch

__version__ = "0.1.0"

__all__ = [
    "Controller",
    "ControllerOracle",
    "Decision",
    "DecisionMap",
    "RLSearch",
    "Sample",
    "rewards",
    "spaces",
]
