"""The Keras Tuner tutorial with one line changed: RandomSearch -> RLSearch.

A small CNN on Fashion-MNIST whose depth, widths, dropout and learning rate
are searched by the REINFORCE-trained controller. Takes about 5 minutes on two
CPU cores with the defaults below.

Needs Fashion-MNIST offline: `apt-get install dataset-fashion-mnist`, or a
folder of the IDX files in `$KERAS_RLNAS_FASHION_MNIST`.

    python examples/rlsearch_fashion_mnist.py --trials 16
"""

import argparse
import time

import keras
import numpy as np

import keras_rlnas
from keras_rlnas.data import load_fashion_mnist


def build_model(hp):
    model = keras.Sequential([keras.Input((28, 28, 1))])
    for i in range(hp.Int("conv_layers", 1, 3)):
        model.add(keras.layers.Conv2D(hp.Choice(f"filters_{i}", [16, 32, 64]), 3, padding="same", activation="relu"))
        model.add(keras.layers.MaxPooling2D())
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(hp.Int("units", 32, 256, step=32), activation=hp.Choice("activation", ["relu", "tanh"])))
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(0.25))
    model.add(keras.layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=12000)
    parser.add_argument("--directory", default="results")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    x_train = x_train[..., None].astype("float32") / 255.0
    x_test = x_test[..., None].astype("float32") / 255.0
    x, y = x_train[: args.train_size], y_train[: args.train_size]
    x_val, y_val = x_train[-5000:], y_train[-5000:]

    start = time.time()
    tuner = keras_rlnas.RLSearch(  # was: keras_tuner.RandomSearch(
        hypermodel=build_model,
        objective="val_accuracy",
        max_trials=args.trials,
        seed=args.seed,
        overwrite=True,
        directory=args.directory,
        project_name="rlsearch_fashion_mnist",
    )
    tuner.search_space_summary()
    tuner.search(x, y, epochs=args.epochs, validation_data=(x_val, y_val), verbose=0)
    tuner.results_summary(3)
    best = tuner.get_best_models(num_models=1)[0]
    _, test_accuracy = best.evaluate(x_test, y_test, verbose=0)
    scores = [t.score for t in tuner.oracle.trials.values() if t.score is not None]
    half = len(scores) // 2
    print(f"\n{len(scores)} trials in {time.time() - start:.0f} s; controller updates: {len(tuner.oracle.updates)}")
    print(f"mean validation accuracy, first half {np.mean(scores[:half]):.4f} -> second half {np.mean(scores[half:]):.4f}")
    print(f"best trial validation accuracy {max(scores):.4f}; its test accuracy {test_accuracy:.4f}")


if __name__ == "__main__":
    main()
