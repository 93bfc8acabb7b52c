"""What a child gets only for its final training: scheduled drop-path and an auxiliary head.

ENAS (Pham et al., 2018) retrains the derived micro architecture with both,
as NASNet did (Zoph et al., 2018): every non-identity op output inside a cell
is dropped for a whole example with a probability that grows with the cell's
depth and with training progress, and an auxiliary classifier after the last
reduction adds `0.4 *` its loss. Neither changes what the network computes at
inference.
"""

import keras
from keras import layers, ops

from keras_rlnas import _checks as checks


@keras.saving.register_keras_serializable(package="keras_rlnas")
class ScheduledDropPath(layers.Layer):
    """Zeroes a path for whole examples, more often as training goes on.

    At training step `t` each example is dropped with probability
    `rate * min(t / total_steps, 1)` and kept examples are scaled by the
    inverse of the keep probability; at inference the layer is the identity.
    The step count lives in the layer (a non-trainable variable), so the
    schedule resumes with the weights.

    Args:
        rate: drop probability reached at the end of training.
        total_steps: optimizer steps over which the rate grows linearly.
        seed: seed of the drop decisions.

    Example:

    >>> import numpy as np
    >>> layer = ScheduledDropPath(0.5, total_steps=1)
    >>> x = np.ones((4, 2, 2, 3), "float32")
    >>> bool(np.all(layer(x, training=False) == x))
    True
    """

    def __init__(self, rate, total_steps, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = checks.fraction("rate", rate)
        self.total_steps = checks.positive_int("total_steps", total_steps)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        # Never cast to float16 under a mixed policy: counts past 65,504 would read as inf.
        self.step = self.add_weight(
            shape=(), initializer="zeros", trainable=False, dtype="float32", autocast=False, name="step"
        )
        self.built = True

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        self.step.assign_add(1.0)
        drop = self.rate * ops.minimum(ops.cast(self.step, "float32") / float(self.total_steps), 1.0)
        keep = ops.cast(1.0 - drop, inputs.dtype)
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        noise = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        return inputs * ops.floor(keep + noise) / keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "total_steps": self.total_steps, "seed": self.seed}


def auxiliary_head(inputs, num_classes, l2=0.0, name="auxiliary"):
    """The reference code's auxiliary classifier on a feature map (a functional sub-graph).

    ReLU, 5x5 average pooling at stride 3 (valid), 1x1 conv to 128 + BN +
    ReLU, a conv covering what is left of the map to 768 + BN + ReLU, then
    a dense softmax.

    Args:
        inputs: a 4-D symbolic feature map.
        num_classes: number of classes.
        l2: L2 factor on the kernels.
        name: prefix of the layer names; the output layer is named `name`.

    Returns:
        The auxiliary class probabilities (float32).
    """
    regularizer = keras.regularizers.L2(l2) if l2 else None
    height, width = inputs.shape[1], inputs.shape[2]
    pool = min(5, height, width)
    x = layers.ReLU(name=f"{name}_relu")(inputs)
    x = layers.AveragePooling2D(pool, strides=3, padding="valid", name=f"{name}_pool")(x)
    for index, (filters, kernel) in enumerate(((128, 1), (768, None))):
        kernel = kernel or (x.shape[1], x.shape[2])
        x = layers.Conv2D(filters, kernel, use_bias=False, kernel_regularizer=regularizer, name=f"{name}_conv{index}")(x)
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn{index}")(x)
        x = layers.ReLU(name=f"{name}_relu{index}")(x)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(num_classes, kernel_regularizer=regularizer, name=f"{name}_dense")(x)
    return layers.Activation("softmax", dtype="float32", name=name)(x)
