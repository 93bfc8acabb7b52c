"""Resident memory across many trials of `RLSearch` in one process.

Keras Tuner users report memory that grows trial after trial. This runs
`--trials` trials of tiny real Keras models (built, trained for one epoch,
checkpointed by Keras Tuner's stock `run_trial`) and prints the resident set
size as it goes, and its growth after a warm-up of `--warmup` trials.

    .venv/bin/python benchmarks/memory_growth.py            # 200 trials
    .venv/bin/python benchmarks/memory_growth.py --trials 50 --every 10
"""

import argparse
import os
import shutil
import tempfile
import time

import keras
import keras_tuner
import numpy as np

import keras_rlnas


def resident_mb():
    """Resident set size of this process in MiB (Linux `/proc`)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def build(hp):
    model = keras.Sequential([keras.Input((16,))])
    for i in range(hp.Int("layers", 1, 3)):
        model.add(keras.layers.Dense(hp.Choice(f"units_{i}", [8, 16, 32]), activation=hp.Choice("act", ["relu", "tanh"])))
    model.add(keras.layers.Dense(4, activation="softmax"))
    model.compile(keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-1, sampling="log")), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def measured(base):
    """`base` tuner class that samples the resident memory after every trial."""

    class Measured(base):
        def __init__(self, *args, every=25, **kwargs):
            super().__init__(*args, **kwargs)
            self.every = every
            self.samples = []
            self.started = time.monotonic()

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            self.samples.append(resident_mb())
            done = len(self.samples)
            if done % self.every == 0 or done == 1:
                print(f"{done:6d} {self.samples[-1]:10.1f} {time.monotonic() - self.started:9.1f}", flush=True)

    return Measured


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10, help="trials before growth is counted")
    parser.add_argument("--every", type=int, default=25, help="print every N trials")
    parser.add_argument("--samples", type=int, default=512, help="training examples")
    parser.add_argument("--tuner", choices=["rl", "random"], default="rl",
                        help="random: keras_tuner.RandomSearch, the baseline")
    args = parser.parse_args(argv)
    if not 0 < args.warmup < args.trials:
        raise SystemExit(f"--warmup must be between 1 and --trials - 1, got {args.warmup}.")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 16)).astype("float32")
    y = (x[:, :4].argmax(axis=1)).astype("int32")
    directory = tempfile.mkdtemp(prefix="memory_growth_")
    try:
        before = resident_mb()
        if args.tuner == "rl":
            tuner = measured(keras_rlnas.RLSearch)(build, objective="val_accuracy", max_trials=args.trials, seed=0,
                                                   every=args.every, max_collisions=0, directory=directory,
                                                   project_name="growth")
        else:
            tuner = measured(keras_tuner.RandomSearch)(build, objective="val_accuracy", max_trials=args.trials,
                                                       seed=0, every=args.every, directory=directory,
                                                       project_name="growth")
        tuner.oracle.verbose = 0
        print(f"{'trial':>6} {'RSS MiB':>10} {'seconds':>9}")
        tuner.search(x, y, epochs=1, batch_size=64, validation_split=0.25, verbose=0)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    samples = tuner.samples
    warm, last = samples[args.warmup - 1], samples[-1]
    growth = last - warm
    per_trial = growth / (len(samples) - args.warmup) * 1024
    print(f"\nRSS before the search {before:.1f} MiB, after trial {args.warmup} {warm:.1f} MiB, "
          f"after trial {len(samples)} {last:.1f} MiB (peak {max(samples):.1f} MiB).")
    print(f"Growth over trials {args.warmup + 1}-{len(samples)}: {growth:.1f} MiB ({per_trial:.0f} KiB per trial).")
    completed = sum(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    updates = len(getattr(tuner.oracle, "updates", []))
    print(f"{type(tuner).__mro__[1].__name__}: {len(tuner.oracle.trials)} trials ({completed} completed), "
          f"controller updates: {updates}, keras-tuner {keras_tuner.__version__}, keras {keras.__version__}.")
    return growth


if __name__ == "__main__":
    main()
