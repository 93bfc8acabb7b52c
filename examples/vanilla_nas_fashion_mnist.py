"""Vanilla NAS (Zoph & Le, 2017) on Fashion-MNIST, sized for a laptop CPU.

An RNN controller samples convolutional networks (kernel sizes, filters,
strides, skip connections), each child trains briefly on a slice of the
training set, and its validation accuracy (best of the last epochs, cubed)
is the controller's reward. The best architecture is then retrained on the
whole training set with augmentation and scored once on the test set.

The paper trained 12,800 children for 50 epochs each on 800 GPUs; the
defaults here (24 children, 2 epochs on 8,000 images, a reduced space, then
5 epochs of retraining) take about 12 minutes on two CPU cores, so read the
result as a demonstration of the machinery, not of the paper's numbers.

Needs Fashion-MNIST offline: `apt-get install dataset-fashion-mnist`, or a
folder of the IDX files in `$KERAS_RLNAS_FASHION_MNIST`.

    python examples/vanilla_nas_fashion_mnist.py --trials 24 --retrain-epochs 5
"""

import argparse
import json
import time

import keras

from keras_rlnas import RLSearch, data
from keras_rlnas.spaces import VanillaNAS


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=24, help="children to sample and train")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per child")
    parser.add_argument("--train-size", type=int, default=8000, help="training images per child")
    parser.add_argument("--layers", type=int, default=4, help="convolutional layers per child")
    parser.add_argument("--update-every", type=int, default=4, help="children per controller update")
    parser.add_argument("--retrain-epochs", type=int, default=5, help="epochs to retrain the best child")
    parser.add_argument("--directory", default="runs/vanilla_nas_fashion_mnist")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def main():
    args = parse_args()
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), validation, _, info = data.load_arrays(
        "fashion_mnist", validation_size=5000
    )
    x_search, y_search = x_train[: args.train_size], y_train[: args.train_size]
    x_val, y_val = validation[0][:2000], validation[1][:2000]
    print(f"Fashion-MNIST from {info.source}: searching on {len(x_search)} training and "
          f"{len(x_val)} validation images.")

    # The paper's space, cut down for a CPU: fewer layers and filters, and
    # strides, which shrink the feature maps and so the cost of each child.
    space = VanillaNAS(
        info.input_shape,
        info.num_classes,
        num_layers=args.layers,
        filter_heights=(1, 3, 5),
        filter_widths=(1, 3, 5),
        num_filters=(8, 16, 32),
        strides=(1, 2),
        learning_rate=0.05,
        epochs=args.epochs,
        batch_size=64,
    )
    tuner = RLSearch(
        space,
        objective="val_accuracy",
        reward="nas",
        max_trials=args.trials,
        update_every=args.update_every,
        seed=args.seed,
        directory=args.directory,
        project_name="search",
        overwrite=True,
    )
    start = time.time()
    tuner.search(x_search, y_search, validation_data=(x_val, y_val), verbose=0)
    search_seconds = time.time() - start

    trials = [t for t in tuner.oracle.trials.values() if t.score is not None]
    scores = [t.score for t in sorted(trials, key=lambda t: int(t.trial_id))]
    half = max(1, len(scores) // 2)
    print(f"\nSearch: {len(trials)} children in {search_seconds / 60:.1f} min "
          f"({search_seconds / max(1, len(trials)):.0f} s each).")
    print(f"Mean validation accuracy, first half of the children: {sum(scores[:half]) / half:.4f}; "
          f"second half: {sum(scores[half:]) / max(1, len(scores) - half):.4f}.")
    for update in tuner.oracle.updates:
        print(f"  controller update {update['step']}: mean reward {update['reward']:.4f}, "
              f"baseline {update['baseline']:.4f}")

    best_hp = tuner.get_best_hyperparameters(1)[0]
    best_trial = tuner.oracle.get_best_trials(1)[0]
    architecture = space.describe(best_hp.copy())
    print(f"\nBest child: validation accuracy {best_trial.score:.4f} after {args.epochs} epochs.")
    print(json.dumps(architecture))

    # Retrain from scratch on all 55,000 training images, with the papers'
    # augmentation (pad-and-crop, flips), and score the test set once.
    train, validation_ds, test, _ = data.load("fashion_mnist", batch_size=128, seed=args.seed)
    model = space.build(best_hp.copy())
    # The children's SGD, with the learning rate annealed to zero over the
    # retraining (the weight decay is in the layers' L2 terms, kept).
    steps = args.retrain_epochs * int(train.cardinality())
    model.compile(
        optimizer=keras.optimizers.SGD(
            keras.optimizers.schedules.CosineDecay(space.learning_rate, steps),
            momentum=space.momentum,
            nesterov=space.nesterov,
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.time()
    # shuffle=False: the pipeline shuffles itself every epoch.
    model.fit(train, validation_data=validation_ds, epochs=args.retrain_epochs, shuffle=False, verbose=2)
    retrain_seconds = time.time() - start
    test_loss, test_accuracy = model.evaluate(test, verbose=0)[:2]
    print(f"\nBest architecture: {model.count_params():,} parameters, retrained "
          f"{args.retrain_epochs} epochs in {retrain_seconds / 60:.1f} min.")
    print(f"Test accuracy: {test_accuracy:.4f} (test loss {test_loss:.4f}).")


if __name__ == "__main__":
    main()
