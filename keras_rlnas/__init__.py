"""keras-rlnas: reinforcement-learning neural architecture search for Keras 3.

Public API:
    - `RLSearch`: a `keras_tuner.RandomSearch` replacement driven by a controller.
    - `ControllerOracle`: the oracle behind it, usable with any Keras Tuner tuner.
    - `Controller`, `Decision`, `Sample`: the REINFORCE-trained LSTM policy.
    - `DecisionMap`: how a Keras Tuner space becomes controller decisions.
    - `ENASTuner`: ENAS, one shared-weight supernet trained while the controller learns.
    - `VanillaNAS`, `ENASMacro`, `ENASMicro`: NAS search spaces (HyperModels).
    - `datasets` (also `data`): image data sets with the papers' preprocessing.
    - `rewards`: reward presets.
"""

import sys

from keras_rlnas import data, rewards, spaces
from keras_rlnas.controller import Controller, Decision, Sample
from keras_rlnas.decision_map import DecisionMap
from keras_rlnas.oracle import ControllerOracle
from keras_rlnas.spaces import ENASMacro, ENASMicro, VanillaNAS
from keras_rlnas.tuners import ENASTuner, RLSearch

# `keras_rlnas.datasets` is the name users look for; the package is `data`.
datasets = data
sys.modules[f"{__name__}.datasets"] = data

__version__ = "0.1.0"

__all__ = [
    "Controller",
    "ControllerOracle",
    "Decision",
    "DecisionMap",
    "ENASMacro",
    "ENASMicro",
    "ENASTuner",
    "RLSearch",
    "Sample",
    "VanillaNAS",
    "data",
    "datasets",
    "rewards",
    "spaces",
]
