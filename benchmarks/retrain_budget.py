"""Retraining to a time budget: is the budget used, and has the rate annealed, when the probe misjudges?

`retrain(time_budget=...)` times a probe copy of the child to plan its epochs;
on a busy CPU that probe misjudges a step by 15-20 % either way. This script
retrains one ENAS macro child on all 55,000 Fashion-MNIST training images,
scored on the 5,000 validation images after every epoch (and once more after
the stop), with the budget given, once per `--probe-error` (the factor the probe's step
time is multiplied by before planning: 0.8 plans too many steps, 1.25 too
few), and prints for each the planned epochs, the seconds used against the
budget, the steps taken, the learning rate of the first and last steps, the
test accuracy, and where the time past the stop went: when the last step
ended against the deadline, the seconds of the last validation pass (the one
after the stop) and of the longest one before it, and the seconds from the
end of `fit` to `retrain`'s return.

Commands
--------
    python benchmarks/retrain_budget.py --budget 120                         # probe errors 0.8, 1.0, 1.25
    python benchmarks/retrain_budget.py --budget 240 --probe-error 0.8 1.25
    python benchmarks/retrain_budget.py --architecture CHILD.json            # {name: value} of a 6 x 24 child
    python benchmarks/retrain_budget.py --budget 600 --probe-error 1.0 --no-validation   # as peers.py retrains

Each run takes its budget plus the data load; run nothing timed beside it.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_rlnas  # noqa: E402
from keras_rlnas import retrain, time_budget  # noqa: E402

#: The 15-minute `peers.py` cell's child (seed 3, a quarter searching): an average pool and a
#: separable conv in front of four convolutions, 58,762 parameters.
DEFAULT_CHILD = {
    "layers[0].op": "avgpool3x3", "layers[1].op": "sepconv3x3", "layers[1].skip[0]": False,
    "layers[2].op": "conv3x3", "layers[2].skip[0]": False, "layers[2].skip[1]": False,
    "layers[3].op": "conv5x5", "layers[3].skip[0]": False, "layers[3].skip[1]": False, "layers[3].skip[2]": False,
    "layers[4].op": "conv5x5", "layers[4].skip[0]": True, "layers[4].skip[1]": True, "layers[4].skip[2]": False,
    "layers[4].skip[3]": True, "layers[5].op": "conv5x5", "layers[5].skip[0]": True, "layers[5].skip[1]": False,
    "layers[5].skip[2]": True, "layers[5].skip[3]": False, "layers[5].skip[4]": False,
}


def misjudging(factor, plans):
    """`fill_budget` as planned by a probe whose step time is off by `factor`; each plan is kept in `plans`."""
    fill_budget = time_budget.fill_budget

    def planned(seconds, epoch_overhead, step_seconds, steps, max_epochs):
        plans.append(fill_budget(seconds, epoch_overhead, step_seconds * factor, steps, max_epochs))
        return plans[-1]

    return planned


class RateRecorder(keras.callbacks.Callback):
    """The learning rate of every training step, and when the run's last step and validation passes ended."""

    def __init__(self):
        super().__init__()
        self.rates, self.validations = [], []
        self.last_step_ended = self.validation_began = self.train_ended = None

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None):
        self.last_step_ended = time.time()

    def on_test_begin(self, logs=None):
        self.validation_began = time.time()

    def on_test_end(self, logs=None):
        self.validations.append(time.time() - self.validation_began)

    def on_train_end(self, logs=None):
        self.train_ended = time.time()


def retrain_misjudged(space, child, data, factor, args):
    """One retraining whose probe misjudges steps by `factor`; returns its row of figures."""
    (x, y), validation, (x_test, y_test) = data
    plans, recorder, fill_budget = [], RateRecorder(), time_budget.fill_budget
    time_budget.fill_budget = misjudging(factor, plans)
    keras.utils.set_random_seed(args.seed)
    began = time.time()
    try:
        model = retrain.retrain(space, child, x, y, epochs=args.epochs, time_budget=args.budget,
                                validation_data=None if args.no_validation else validation,
                                callbacks=[recorder], seed=args.seed)
    finally:
        time_budget.fill_budget = fill_budget
    returned = time.time()
    seconds = returned - began
    deadline = began + args.budget
    accuracy = float(np.mean(np.argmax(model.predict(x_test, batch_size=500, verbose=0), axis=1) == y_test))
    planned = f"{plans[0][0]} x {plans[0][1]}" if plans else "-"
    last_validation = f"{recorder.validations[-1]:.1f}" if recorder.validations else "-"
    return (f"{factor:>11.2f} {planned:>14} {seconds:>8.1f} {seconds - args.budget:>+6.1f} {len(recorder.rates):>6} "
            f"{len(model.history.epoch):>6} {recorder.rates[0]:>10.5f} {recorder.rates[-1]:>10.5f} {accuracy:>8.4f}  "
            f"{os.getloadavg()[0]:.1f}  {recorder.last_step_ended - deadline:+10.1f} {last_validation:>10} "
            f"{max(recorder.validations[:-1] or [0]):>10.1f} {returned - recorder.train_ended:>8.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of retraining")
    parser.add_argument("--probe-error", type=float, nargs="+", default=(0.8, 1.0, 1.25))
    parser.add_argument("--architecture", help="JSON of the child's {name: value} (default: DEFAULT_CHILD)")
    parser.add_argument("--epochs", type=int, default=200, help="the epoch cap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-validation", action="store_true",
                        help="retrain without validation data, as `peers.py` retrains the ENAS child")
    args = parser.parse_args()
    child = DEFAULT_CHILD
    if args.architecture:
        with open(args.architecture) as file:
            child = json.load(file)
    (x, y), validation, (x_test, y_test), info = keras_rlnas.datasets.load_arrays("fashion_mnist")
    space = keras_rlnas.ENASMacro(info.input_shape, info.num_classes, num_layers=6, filters=24)
    print(f"{'probe error':>11} {'planned':>14} {'seconds':>8} {'over':>6} {'steps':>6} {'epochs':>6} "
          f"{'first rate':>10} {'last rate':>10} {'test acc':>8}  load  {'last step':>10} {'last val':>10} "
          f"{'val before':>10} {'after fit':>8}")
    for factor in args.probe_error:
        print(retrain_misjudged(space, child, ((x, y), validation, (x_test, y_test)), factor, args), flush=True)


if __name__ == "__main__":
    main()
