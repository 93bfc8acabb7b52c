"""ENAS macro search on Fashion-MNIST, then retraining of the derived child.

The supernet (12 layers x 36 filters by default) trains with a fresh child per
minibatch; the controller learns from validation-minibatch accuracies; each
epoch's derived architecture is a Keras Tuner trial. The best one is then
trained from scratch with augmentation (pad-and-crop, flips, cutout) and
scored once on the test set.

    python examples/enas_macro_fashion_mnist.py --search-minutes 40 --retrain-epochs 10

With `--retrain-minutes`, `--retrain-epochs` is the most epochs and the count
is chosen to fit the time. The run in the README's table (2-core CPU, about
1 h 30 min in all, 0.9238 test accuracy):

    python examples/enas_macro_fashion_mnist.py --search-minutes 50 --retrain-minutes 55 \
        --retrain-epochs 40 --retrain-cutout 0
"""

import argparse
import time

import keras_rlnas


def parse_args(space="macro"):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search-minutes", type=float, default=40.0)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--retrain-epochs", type=int, default=10)
    parser.add_argument("--retrain-minutes", type=float, default=None, help="time budget of the retraining")
    parser.add_argument("--retrain-cutout", type=int, default=8, help="cutout side for retraining (0: none)")
    parser.add_argument("--retrain-filters", type=int, default=None, help="wider final network (search width if unset)")
    parser.add_argument("--layers", type=int, default=12 if space == "macro" else 2, help="macro layers / micro cells per stage")
    parser.add_argument("--filters", type=int, default=36 if space == "macro" else 20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None, help="training images (all when unset)")
    parser.add_argument("--sampler", default="controller", choices=["controller", "uniform"])
    parser.add_argument("--directory", default="results")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def run(space_name="macro"):
    args = parse_args(space_name)
    splits = keras_rlnas.datasets.load("fashion_mnist", batch_size=args.batch_size, cutout=None, limit=args.limit, seed=args.seed)
    arrays = keras_rlnas.datasets.load_arrays("fashion_mnist", limit=args.limit)
    validation = arrays[1]
    shape, classes = splits.info.input_shape, splits.info.num_classes
    if space_name == "macro":
        space = keras_rlnas.ENASMacro(shape, classes, num_layers=args.layers, filters=args.filters)
    else:
        space = keras_rlnas.ENASMicro(shape, classes, num_cells=args.layers, filters=args.filters)
    tuner = keras_rlnas.ENASTuner(
        space, seed=args.seed, sampler=args.sampler, batch_size=args.batch_size,
        directory=args.directory, project_name=f"enas_{space_name}_fashion_mnist", overwrite=True,
    )
    start = time.time()
    tuner.search(splits.train, validation_data=validation, epochs=args.max_epochs, time_budget=args.search_minutes * 60)
    search_minutes = (time.time() - start) / 60
    best_trial = tuner.oracle.get_best_trials(1)[0]
    print(f"\nsearch: {tuner.epochs_done} epochs in {search_minutes:.1f} min; best shared-weight accuracy {best_trial.score:.4f}")
    print("architecture:", best_trial.hyperparameters.values)
    cutout_splits = keras_rlnas.datasets.load("fashion_mnist", batch_size=args.batch_size, cutout=args.retrain_cutout or None, limit=args.limit, seed=args.seed)
    start = time.time()
    model = tuner.retrain(best_trial.hyperparameters, cutout_splits.train, None, epochs=args.retrain_epochs,
                          filters=args.retrain_filters, validation_data=cutout_splits.validation, verbose=2,
                          time_budget=args.retrain_minutes and args.retrain_minutes * 60)
    _, test_accuracy = model.evaluate(cutout_splits.test, verbose=0)
    print(f"retrain: {len(model.history.epoch)} epochs in {(time.time() - start) / 60:.1f} min, {model.count_params():,} parameters")
    print(f"test accuracy {test_accuracy:.4f}")


if __name__ == "__main__":
    run("macro")
