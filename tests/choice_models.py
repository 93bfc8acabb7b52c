"""Small models built with choice layers, shared by the tests of weight sharing over a user's space."""

import keras
import numpy as np

from keras_rlnas.layers import InputChoice, LayerChoice


def conv(filters, size):
    return keras.layers.Conv2D(filters, size, padding="same", activation="relu")


def build(hp, batch_norm=True, dropout=0.1):
    """An 8x8x1 image classifier (3 classes): two LayerChoices and an InputChoice."""
    images = keras.Input((8, 8, 1))
    stem = conv(4, 3)(images)
    if batch_norm:
        stem = keras.layers.BatchNormalization()(stem)
    first = LayerChoice({"conv3": conv(4, 3), "conv5": conv(4, 5), "pool": keras.layers.MaxPooling2D(3, 1, "same")},
                        name="op1", hp=hp)(stem)
    second = LayerChoice([conv(4, 3), keras.layers.SeparableConv2D(4, 3, padding="same", activation="relu")],
                         name="op2", hp=hp)(first)
    x = InputChoice(name="skip", hp=hp)([stem, first, second])
    x = keras.layers.GlobalAveragePooling2D()(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(images, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def plain_build(hp):
    """`build` without batch norm or dropout: replicas of a distributed step then see the same model."""
    return build(hp, batch_norm=False, dropout=0.0)


def data(count=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count, 8, 8, 1), dtype="float32"), rng.integers(0, 3, count)
