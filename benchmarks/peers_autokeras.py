"""AutoKeras's `ImageClassifier` under a wall-clock budget: the `autokeras` cell of benchmarks/peers.py.

Runs in its own virtualenv, made by `bash benchmarks/setup_autokeras.sh`:
autokeras 3.0.0 (the newest release) with keras 3.12.0, keras-tuner 1.4.8,
tensorflow-cpu 2.21.0 and tensorboard 2.21.0 on Python 3.11. AutoKeras 3.0.0 hands `Dense` a
NumPy integer as its unit count; Keras 3.13 and later refuse it
(`ValueError: Received an invalid value for units, expected a positive
integer. Received: units=10`), Keras 3.12.0 accepts it and is the oldest
Keras TensorFlow 2.21 takes. benchmarks/peers.py starts it with the same
arrays as every other system, passed as an .npz file (so this environment
needs no keras_rlnas), and records the JSON line it prints last:

    .venv-autokeras/bin/python benchmarks/peers_autokeras.py --data arrays.npz \\
        --budget-seconds 900 --search-fraction 0.5 --seed 0 --directory runs/peers/autokeras

The classifier runs as its users run it: `ak.ImageClassifier(max_trials=100,
overwrite=True, seed=...)`, `fit(x, y, validation_data=..., epochs=None)`,
so every trial trains until AutoKeras's early stopping and the best trial's
model is kept (peers.py then passes `--search-fraction 1`); with `--epochs`,
AutoKeras trains the best model anew in a final fit. A callback holds the
budget: at the search deadline it ends the running trial and stops the
oracle from starting another; during a final fit it stops at the budget's end. The
exported model's parameters and its test accuracy (scored once, through
`ImageClassifier.predict`) are reported.
"""

import argparse
import json
import os
import platform
import time

import numpy as np


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_val, y_val, x_test, y_test")
    parser.add_argument("--budget-seconds", type=float, required=True, help="search + final fit")
    parser.add_argument("--search-fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-trials", type=int, default=100, help="AutoKeras's default")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (None: AutoKeras's early stopping)")
    parser.add_argument("--directory", default="runs/peers/autokeras")
    return parser.parse_args()


def deadlines_callback(keras, oracle, search_deadline, final_deadline):
    """A callback that ends trials at `search_deadline` and AutoKeras's final fit at `final_deadline`."""

    class Deadlines(keras.callbacks.Callback):
        # AutoKeras and Keras Tuner deep-copy the callbacks; this one stays itself.
        def __deepcopy__(self, memo):
            return self

        def __init__(self):
            super().__init__()
            self.trials_stopped_at = None
            self.final_fit_began = None
            self.final = False

        def on_train_begin(self, logs=None):
            # No trial is running during AutoKeras's final fit.
            self.final = not oracle.ongoing_trials
            if self.final and self.final_fit_began is None:
                self.final_fit_began = time.time()

        def on_train_batch_end(self, batch, logs=None):
            now = time.time()
            if self.final:
                if now > final_deadline:
                    self.model.stop_training = True
            elif now > search_deadline:
                self.model.stop_training = True
                if self.trials_stopped_at is None:
                    self.trials_stopped_at = now
                    oracle.max_trials = max(1, len(oracle.trials))

    return Deadlines()


def decoded_accuracy(classifier, x, y):
    """Accuracy of `classifier.predict` (which gives labels back as AutoKeras encoded them) against `y`."""
    predicted = np.asarray(classifier.predict(x, verbose=0)).reshape(-1)
    labels = np.array([int(float(v.decode() if isinstance(v, bytes) else v)) for v in predicted])
    return float(np.mean(labels == np.asarray(y).reshape(-1)))


def main():
    args = parse_args()
    arrays = np.load(args.data)
    x, y = arrays["x_train"], arrays["y_train"]
    validation = (arrays["x_val"], arrays["y_val"])
    x_test, y_test = arrays["x_test"], arrays["y_test"]

    import autokeras as ak
    import keras
    import keras_tuner
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    start = time.time()
    search_deadline = start + args.search_fraction * args.budget_seconds
    final_deadline = start + args.budget_seconds
    classifier = ak.ImageClassifier(max_trials=args.max_trials, overwrite=True, seed=args.seed,
                                    directory=args.directory, project_name="image_classifier")
    deadlines = deadlines_callback(keras, classifier.tuner.oracle, search_deadline, final_deadline)
    classifier.fit(x, y, validation_data=validation, epochs=args.epochs, callbacks=[deadlines], verbose=2)
    finished = time.time()
    final_began = deadlines.final_fit_began or finished
    model = classifier.export_model()
    oracle = classifier.tuner.oracle
    trials = list(oracle.trials.values())
    best = oracle.get_best_trials(1)[0]
    result = {
        "test_accuracy": decoded_accuracy(classifier, x_test, y_test),
        "validation_accuracy": decoded_accuracy(classifier, *validation),
        "parameters": int(model.count_params()),
        "seconds_search": final_began - start,
        "seconds_train": finished - final_began,
        "seconds_budgeted": finished - start,
        "versions": {"autokeras": ak.__version__, "keras": keras.__version__,
                     "keras_tuner": keras_tuner.__version__, "tensorflow": tf.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
        "details": {
            "trials": len(trials),
            "trial_status": [str(t.status) for t in trials],
            "objective": oracle.objective.name,
            "best_score_in_search": best.score,
            "best_hyperparameters": {k: v for k, v in best.hyperparameters.values.items()
                                     if isinstance(v, (int, float, str, bool))},
            "search_stopped_at_deadline": deadlines.trials_stopped_at is not None,
            "max_trials": args.max_trials,
            "epochs_per_trial": args.epochs,
            "directory": os.path.abspath(args.directory),
        },
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
