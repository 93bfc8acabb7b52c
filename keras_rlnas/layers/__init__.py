"""The layers ENAS children and supernets are made of.

Both `spaces` (standalone children) and `supernet` (shared weights) build
from these, with the same class and layer names, so a supernet's weights
copy into a child by layer name.

- `ops`: the convolution, pooling and reduction blocks of both ENAS spaces.
- `batch_norm`: fused batch normalisation whose moving statistics can be frozen.
- `pooling`: 3x3 pooling with a memory-light max-pool gradient.
- `projection`: the concatenation and projection of a micro cell's loose ends.
- `final_training`: scheduled drop-path and the auxiliary head of final training.
- `choice`: `LayerChoice` / `InputChoice`, a user's own search space for any tuner.
- `choice_context`: what choice layers read: the `hp` of a supernet build, the architecture of its step.
"""

from keras_rlnas.layers.batch_norm import BatchNorm, frozen_moving_statistics
from keras_rlnas.layers.choice import InputChoice, LayerChoice
from keras_rlnas.layers.final_training import ScheduledDropPath, auxiliary_head
from keras_rlnas.layers.ops import ConvBN, FactorizedReduction, MacroConv, MacroPool, SepConvStack
from keras_rlnas.layers.pooling import Pool3x3
from keras_rlnas.layers.projection import LooseEndProjection

__all__ = [
    "BatchNorm",
    "ConvBN",
    "FactorizedReduction",
    "InputChoice",
    "LayerChoice",
    "LooseEndProjection",
    "MacroConv",
    "MacroPool",
    "Pool3x3",
    "ScheduledDropPath",
    "SepConvStack",
    "auxiliary_head",
    "frozen_moving_statistics",
]
