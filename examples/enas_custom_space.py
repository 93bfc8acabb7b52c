"""Weight-sharing search over your own network: a small residual CNN with choice layers.

`build(hp)` is written as for any Keras Tuner tuner, with three
`LayerChoice`s (the op of each residual block) and two `InputChoice`s (the
shortcut of the third block, and the two feature maps the head averages). The
same function is searched with ENAS (`ENASTuner`: one supernet, a controller
learning from shared-weight scores) and with `RLSearch` (every trial trained
on its own); the ENAS winner is retrained from scratch, scored on the test
set and exported as a SavedModel that TensorFlow serves without this package.

Needs Fashion-MNIST offline: `apt-get install dataset-fashion-mnist`, or a
folder of the IDX files in `$KERAS_RLNAS_FASHION_MNIST`.

    python examples/enas_custom_space.py --limit 6000 --enas-epochs 4 --rl-trials 4

With these defaults (6,000 images, of which 1,000 for validation) it takes
about 4 minutes on two CPU cores: ENAS reaches 0.70 shared-weight validation
accuracy in 4 epochs (145 s), the best of 4 one-epoch RLSearch trials 0.56
(61 s), and the ENAS child retrained for 3 epochs 0.52 test accuracy.
"""

import argparse
import os
import time

import keras

import keras_rlnas
from keras_rlnas import InputChoice, LayerChoice
from keras_rlnas.export import export_model, max_prediction_difference

FILTERS = 16


def conv_bn(filters, size, separable=False):
    conv = keras.layers.SeparableConv2D if separable else keras.layers.Conv2D
    return keras.Sequential([
        conv(filters, size, padding="same", use_bias=False),
        keras.layers.BatchNormalization(momentum=0.9),
        keras.layers.ReLU(),
    ])


def block_op(name, hp):
    """The searched op of a residual block: every candidate keeps the shape."""
    return LayerChoice({
        "conv3": conv_bn(FILTERS, 3),
        "conv5": conv_bn(FILTERS, 5),
        "sep3": conv_bn(FILTERS, 3, separable=True),
        "maxpool": keras.layers.MaxPooling2D(3, strides=1, padding="same"),
    }, name=name, hp=hp)


def residual(shortcut, x):
    # Normalised after the sum: the candidates' outputs differ in scale (a
    # pooling is not normalised), and a shared head sees every architecture.
    return keras.layers.BatchNormalization(momentum=0.9)(keras.layers.Add()([shortcut, x]))


def build(hp):
    images = keras.Input((28, 28, 1))
    stem = conv_bn(FILTERS, 3)(images)
    x1 = residual(stem, block_op("block1", hp)(stem))
    x1 = keras.layers.MaxPooling2D()(x1)  # 14x14
    x2 = residual(x1, block_op("block2", hp)(x1))
    shortcut = InputChoice(name="shortcut3", hp=hp)([x1, x2])
    x3 = residual(shortcut, block_op("block3", hp)(x2))
    features = InputChoice(n_chosen=2, reduction="mean", name="head", hp=hp)([x1, x2, x3])
    x = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(images, outputs)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=6000, help="examples of each split")
    parser.add_argument("--enas-epochs", type=int, default=4)
    parser.add_argument("--rl-trials", type=int, default=4)
    parser.add_argument("--rl-epochs", type=int, default=1, help="training epochs of each RLSearch trial")
    parser.add_argument("--retrain-epochs", type=int, default=3)
    parser.add_argument("--directory", default="results")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main():
    args = parse_args()
    (x, y), validation, (x_test, y_test), _ = keras_rlnas.datasets.load_arrays(
        "fashion_mnist", validation_size=min(1000, args.limit // 5), limit=args.limit
    )
    start = time.time()
    enas = keras_rlnas.ENASTuner(build, seed=args.seed, directory=args.directory, project_name="enas_custom",
                                 overwrite=True, verbose=1)
    enas.search(x, y, validation_data=validation, epochs=args.enas_epochs)
    best = enas.oracle.get_best_trials(1)[0]
    print(f"ENAS: {enas.epochs_done} epochs in {time.time() - start:.0f} s, best shared-weight accuracy "
          f"{best.score:.4f}: {best.hyperparameters.values}")

    start = time.time()
    rl = keras_rlnas.RLSearch(build, objective="val_accuracy", max_trials=args.rl_trials, seed=args.seed,
                              directory=args.directory, project_name="rl_custom", overwrite=True)
    rl.search(x, y, epochs=args.rl_epochs, validation_data=validation, verbose=0)
    rl_best = rl.oracle.get_best_trials(1)[0]
    print(f"RLSearch: {args.rl_trials} trials in {time.time() - start:.0f} s, best validation accuracy "
          f"{rl_best.score:.4f}: {rl_best.hyperparameters.values}")

    model = enas.retrain(best.hyperparameters, x, y, epochs=args.retrain_epochs, validation_data=validation, verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"ENAS child retrained: {model.count_params():,} parameters, test accuracy {accuracy:.4f}")
    path = export_model(model, os.path.join(args.directory, "enas_custom_saved_model"), format="saved_model")
    difference = max_prediction_difference(model, path, "saved_model", x_test[:256])
    print(f"SavedModel at {path}; largest prediction difference {difference:.2e}")


if __name__ == "__main__":
    main()
