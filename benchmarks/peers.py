"""Same-budget comparison on Fashion-MNIST: keras-rlnas against what a Keras user would pick instead.

One invocation is one cell of the table: a system, a wall-clock budget and a
seed. It appends one JSON line to the results file and skips a cell that is
already there (unless `--force`), so the table can be filled over several
sittings without rerunning finished cells:

    python benchmarks/peers.py --system enas-macro --budget-minutes 15 --seed 0
    python benchmarks/peers.py --system kt-hyperband --budget-minutes 30 --seed 1
    python benchmarks/peers.py --table                # the markdown table of the README
    python benchmarks/peers.py --plot docs/peers.png  # test accuracy against budget

Systems (`--system`):

- `enas-macro`, `enas-micro`: `keras_rlnas.ENASTuner` search, then
  `tuner.retrain(best, ..., time_budget=...)` of the derived child on all
  training images;
- `rlsearch-vanilla`: `keras_rlnas.RLSearch` over `keras_rlnas.VanillaNAS`
  (the space of examples/vanilla_nas_fashion_mnist.py), then
  `keras_rlnas.retrain.retrain` of the best child;
- `kt-random`, `kt-hyperband`: Keras Tuner `RandomSearch` / `Hyperband` over
  `cnn_hypermodel` below (conv blocks with tunable filters, kernel size and
  dropout, batch norm, a dense layer, Adam's learning rate), then the best
  hyperparameters trained anew on all training images;
- `autokeras`: `ak.ImageClassifier` as its users run it (`epochs=None`: each
  trial trains until its early stopping and the best trial's model is kept,
  so the search gets the whole budget; with `--autokeras-epochs` AutoKeras
  trains the best model anew in its final fit, which gets the budget's
  second part), in its own virtualenv (`bash benchmarks/setup_autokeras.sh`)
  through `benchmarks/peers_autokeras.py`;
- `cnn-bn`: a hand-written 2-conv + batch-norm CNN trained with Adam for the
  whole budget: the floor every search must beat.

The budget (`--budget-minutes`) is wall-clock time for search plus final
training, on the clock from after the imports and the data load until the
final model is trained. A searching system gets `--search-fraction` of it
(0.5 unless set) for the search; the final training gets what is left when
the search ends. Each part holds its deadline:

- ENAS: the omega phase reads a generator that stops early enough to leave
  room for the epoch's controller and derivation phases (timed on the
  previous epoch; for the first, estimated from the omega phase's speed)
  and for the finalists' fine-tuning when the search ends (when the tuner
  fine-tunes), and `search(time_budget=...)` starts no epoch that would end
  past the search deadline (with fine-tuning the clock alone ends the
  search); `retrain(time_budget=...)` fits its epoch count to the time left
  and stops at it;
- Keras Tuner, RLSearch and AutoKeras: a callback stops the running trial at
  the search deadline and stops the oracle from starting another (the trial
  it stopped is scored on what it learned so far);
- final training of `kt-*` and `cnn-bn`: Adam with its learning rate annealed
  on a cosine of wall-clock time to the deadline (`retrain`'s schedule under
  a time budget) and stopped after the batch that passes it.

Data, the same for every system: `keras_rlnas.datasets.load_arrays("fashion_mnist")`,
55,000 training / 5,000 validation / 10,000 test images, whitened with the
training set's statistics, no augmentation (`--final-augment PAD` shifts and
flips the final training's images: `final_training_data`). Searches train children on
`--trial-images` training images (a seeded random subset; ENAS draws a fresh
subset of that size each epoch) and score them on all 5,000 validation
images; the final model trains on all 55,000 training images. The test set
is scored once, after the budget. Each line records the test and validation
accuracy, parameters, seconds searching and training, total wall seconds,
the load average at start and end, package versions, CPU count and model,
the date, the git commit and the command.
"""

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_RESULTS = HERE / "results" / "peers.jsonl"
AUTOKERAS_RUNNER = HERE / "peers_autokeras.py"
AUTOKERAS_PYTHON = ROOT / ".venv-autokeras" / "bin" / "python"

SYSTEMS = ("enas-macro", "enas-micro", "rlsearch-vanilla", "kt-random", "kt-hyperband", "autokeras", "cnn-bn")
#: Systems that search before their final training (and so split the budget).
SEARCHING = tuple(s for s in SYSTEMS if s != "cnn-bn")
#: A cell counts as within its budget when it overran by at most this share of it, or 5 s.
BUDGET_TOLERANCE = 0.01
FINAL_BATCH_SIZE = 128
SCORE_BATCH_SIZE = 500


# --------------------------------------------------------------------------- budget
class Budget:
    """The wall-clock budget of one cell: a search deadline and a final deadline.

    Args:
        seconds: the whole budget.
        search_fraction: the search's share (`None`: no search).
        start: `time.time()` at which the budget starts (now when `None`).
    """

    def __init__(self, seconds, search_fraction, start=None):
        self.seconds = float(seconds)
        self.search_fraction = search_fraction
        self.start = time.time() if start is None else start
        self.search_deadline = self.start + self.seconds * (search_fraction or 0.0)
        self.final_deadline = self.start + self.seconds

    def left(self):
        """Seconds until the final deadline (at least 1, so that a final training always runs)."""
        return max(1.0, self.final_deadline - time.time())


def _callbacks():
    """The Keras callbacks of this file (defined once Keras is imported)."""
    import keras

    from keras_rlnas.time_budget import CosineToDeadline, StopAtDeadline

    class SearchDeadline(keras.callbacks.Callback):
        """Stops a Keras Tuner search at `deadline`: ends the running trial and lets the oracle start no other.

        Keras Tuner deep-copies the callbacks of every trial; this one stays
        itself, so it keeps its oracle and what it noted.
        """

        def __init__(self, oracle, deadline):
            super().__init__()
            self.oracle, self.deadline, self.stopped_at = oracle, deadline, None

        def __deepcopy__(self, memo):
            return self

        def on_train_batch_end(self, batch, logs=None):
            if time.time() > self.deadline:
                self.model.stop_training = True
                if self.stopped_at is None:
                    self.stopped_at = time.time()
                    self.oracle.max_trials = max(1, len(self.oracle.trials))

    class ENASClock(keras.callbacks.Callback):
        """Keeps an `ENASTuner.search` inside its deadline.

        `dataset()` is the omega phase's training data: each epoch a fresh
        seeded subset of `epoch_images` training images in minibatches, cut
        short when the time left would no longer hold the epoch's "tail",
        its controller and derivation phases. The tail is timed on the
        previous epoch; before the first one it is estimated from the omega
        phase's own speed: the tail's forward passes (`tail_images`: reward,
        derivation and finalist images) at half the cost of a training
        image (measured: 168 s for the 43,520 images of the macro defaults
        at 7.7 ms per training image), the cost timed from the fourth
        minibatch on so that graph tracing does not count. As a callback, it ends the search
        after an epoch when the next one would not fit a quarter of a full
        omega phase plus its tail. Both keep time for the fine-tuning of the
        finalists when the search ends (`final_images` training images, at
        the omega phase's cost per image).
        """

        #: A tail image costs about this fraction of a training image (first epoch only).
        FORWARD_COST = 0.5
        #: A fine-tuning image (minibatch 128) costs about this fraction of an omega-phase one (minibatch 32):
        #: 0.70 ms against 1.4 ms per image on the 6 x 16 macro supernet (benchmarks/enas_ranking.py).
        FINE_TUNE_COST = 0.5
        #: Minibatches not timed for the first epoch's estimate (graph tracing).
        WARMUP_BATCHES = 3

        def __init__(self, x, y, batch_size, epoch_images, tail_images, deadline, seed, final_images=0):
            super().__init__()
            self.final_images, self.per_image = final_images, None
            self.search_over = False  # then the finalists' fine-tuning draws whole, untimed minibatches
            self.x, self.y, self.batch_size = x, y, batch_size
            self.epoch_images = min(epoch_images, len(x))
            self.tail_images, self.deadline = tail_images, deadline
            self.rng = np.random.default_rng(seed)
            self.tail = None
            self.full_omega = None
            self.omega_began = self.omega_ended = self.first_omega_began = None
            self.images = 0
            self.cut_epochs = 0
            self.epochs = []  # Per epoch: omega-phase seconds and images, tail seconds.

        def dataset(self):
            import tensorflow as tf

            signature = (
                tf.TensorSpec((None, *self.x.shape[1:]), tf.float32),
                tf.TensorSpec((None,), tf.int32),
            )
            return tf.data.Dataset.from_generator(self._batches, output_signature=signature)

        def _reserve(self, seen, warm_since):
            """Seconds to keep for the tail, or `None` while the first epoch cannot tell yet."""
            if self.tail is not None:
                return 1.2 * self.tail + self.per_image * self.FINE_TUNE_COST * self.final_images
            warm_images = seen - self.WARMUP_BATCHES * self.batch_size
            if warm_since is None or warm_images < self.batch_size:
                return None
            per_image = (time.time() - warm_since) / warm_images
            return per_image * (self.FORWARD_COST * self.tail_images + self.FINE_TUNE_COST * self.final_images)

        def _batches(self):
            if self.search_over:
                order = self.rng.permutation(len(self.x))
                for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
                    yield self.x[order[start : start + self.batch_size]], self.y[order[start : start + self.batch_size]]
                return
            self.omega_began = time.time()
            order = self.rng.permutation(len(self.x))[: self.epoch_images]
            seen, warm_since = 0, None
            try:
                for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
                    if seen == self.WARMUP_BATCHES * self.batch_size:
                        warm_since = time.time()
                    reserve = self._reserve(seen, warm_since)
                    if reserve is not None and time.time() > self.deadline - reserve:
                        self.cut_epochs += 1
                        break
                    index = order[start : start + self.batch_size]
                    seen += len(index)
                    yield self.x[index], self.y[index]
            finally:
                self.omega_ended, self.images = time.time(), seen
                if seen:
                    self.full_omega = (self.omega_ended - self.omega_began) * self.epoch_images / seen
                    warm_images = seen - self.WARMUP_BATCHES * self.batch_size
                    if warm_since is not None and warm_images > 0:  # without the first epoch's tracing
                        self.per_image = (self.omega_ended - warm_since) / warm_images
                    else:
                        self.per_image = self.full_omega / self.epoch_images

        def on_epoch_end(self, epoch, logs=None):
            now = time.time()
            self.tail = now - self.omega_ended
            if not self.epochs:
                self.first_omega_began = self.omega_began
            self.epochs.append({"omega_seconds": round(self.omega_ended - self.omega_began, 1),
                                "omega_images": self.images, "tail_seconds": round(self.tail, 1)})
            needed = (1.2 * self.tail + 0.25 * (self.full_omega or 0.0)
                      + (self.per_image or 0.0) * self.FINE_TUNE_COST * self.final_images)
            if self.deadline - now < needed:
                self.model.stop_training = self.search_over = True

    return StopAtDeadline, CosineToDeadline, SearchDeadline, ENASClock


# --------------------------------------------------------------------------- models
INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def cnn_hypermodel(hp):
    """The space a Keras user writes first: conv blocks with batch norm, a dense layer, Adam."""
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(INPUT_SHAPE)])
    for i in range(hp.Int("conv_blocks", 1, 3, default=2)):
        model.add(layers.Conv2D(hp.Choice(f"filters_{i}", [32, 64, 128]), hp.Choice(f"kernel_{i}", [3, 5]),
                                padding="same", use_bias=False))
        model.add(layers.BatchNormalization())
        model.add(layers.ReLU())
        model.add(layers.MaxPooling2D())
        model.add(layers.Dropout(hp.Float(f"dropout_{i}", 0.0, 0.5, step=0.1, default=0.2)))
    model.add(layers.Flatten())
    model.add(layers.Dense(hp.Int("units", 64, 512, step=64, default=128), activation="relu"))
    model.add(layers.Dropout(hp.Float("dense_dropout", 0.0, 0.5, step=0.1, default=0.3)))
    model.add(layers.Dense(NUM_CLASSES, activation="softmax"))
    learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def cnn_bn():
    """The floor: two 3x3 conv layers (32, 64 filters) with batch norm and pooling, dense 128, Adam 1e-3."""
    import keras
    from keras import layers

    model = keras.Sequential([keras.Input(INPUT_SHAPE)])
    for filters in (32, 64):
        model.add(layers.Conv2D(filters, 3, padding="same", use_bias=False))
        model.add(layers.BatchNormalization())
        model.add(layers.ReLU())
        model.add(layers.MaxPooling2D())
    model.add(layers.Flatten())
    model.add(layers.Dense(128, activation="relu"))
    model.add(layers.Dropout(0.3))
    model.add(layers.Dense(NUM_CLASSES, activation="softmax"))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train_until(model, x, y, deadline, verbose=0):
    """Trains a compiled `model` on all of `(x, y)` until `deadline`, learning rate on a wall-clock cosine.

    `x` may be a batched `tf.data.Dataset` (`final_training_data`), `y` then `None`.
    """
    stop_at_deadline, cosine_to_deadline, _, _ = _callbacks()
    batching = {"shuffle": False} if y is None else {"batch_size": FINAL_BATCH_SIZE, "shuffle": True}
    history = model.fit(
        x, y, epochs=100_000, verbose=verbose, **batching,
        callbacks=[cosine_to_deadline(deadline), stop_at_deadline(deadline)],
    )
    return len(history.epoch)


def final_training_data(args, x, y):
    """The final training's data: the arrays, or shuffled batches augmented as the flags ask.

    With `--final-augment PAD` each image is zero-padded by PAD pixels and
    cropped back at a random offset, then flipped left-right at random
    (Fashion-MNIST's garments keep their class in a mirror); ENAS's
    `--retrain-cutout` is cut out in the same pipeline
    (`keras_rlnas.retrain.training_batches`). Returns `(x, y)` for `fit` /
    `retrain`: arrays, or a dataset and `None`.
    """
    cutout = args.retrain_cutout if args.system in ("enas-macro", "enas-micro") else None
    if not (args.final_augment or cutout):
        return x, y
    from keras_rlnas.retrain import training_batches

    batches, _ = training_batches(x, y, FINAL_BATCH_SIZE, cutout, args.seed, pad=args.final_augment,
                                  flip=bool(args.final_augment))
    return batches, None


def trial_subset(data, images, seed):
    """A seeded random subset of `images` training images for the searches' trials."""
    (x, y), _, _ = data
    index = np.random.default_rng(seed).permutation(len(x))[:images]
    return x[index], y[index]


# --------------------------------------------------------------------------- systems
def run_cnn_bn(args, data, budget):
    (x, y), _, _ = data
    model = cnn_bn()
    began = time.time()
    epochs = train_until(model, *final_training_data(args, x, y), budget.final_deadline, args.verbose)
    return {"model": model, "seconds_search": 0.0, "seconds_train": time.time() - began,
            "details": {"final_epochs": epochs}}


def run_keras_tuner(args, data, budget):
    import keras_tuner

    (x, y), validation, _ = data
    _, _, search_deadline, _ = _callbacks()
    common = dict(objective="val_accuracy", seed=args.seed, directory=args.directory,
                  project_name=cell_name(args), overwrite=True)
    if args.system == "kt-random":
        tuner = keras_tuner.RandomSearch(cnn_hypermodel, max_trials=100_000, **common)
        fit = {"epochs": args.trial_epochs}
    else:
        tuner = keras_tuner.Hyperband(cnn_hypermodel, max_epochs=args.hyperband_max_epochs, factor=3,
                                      hyperband_iterations=1000, **common)
        fit = {"epochs": args.hyperband_max_epochs}
    x_trial, y_trial = trial_subset(data, args.trial_images, args.seed)
    deadline = search_deadline(tuner.oracle, budget.search_deadline)
    began = time.time()
    tuner.search(x_trial, y_trial, validation_data=validation, batch_size=FINAL_BATCH_SIZE,
                 callbacks=[deadline], verbose=0, **fit)
    seconds_search = time.time() - began
    best = tuner.oracle.get_best_trials(1)[0]
    model = cnn_hypermodel(best.hyperparameters)
    began = time.time()
    epochs = train_until(model, *final_training_data(args, x, y), budget.final_deadline, args.verbose)
    return {
        "model": model, "seconds_search": seconds_search, "seconds_train": time.time() - began,
        "details": {"trials": len(tuner.oracle.trials), "best_val_accuracy_in_search": best.score,
                    "best_hyperparameters": best.hyperparameters.values, "final_epochs": epochs},
    }


VANILLA_SPACE = dict(num_layers=4, filter_heights=(1, 3, 5), filter_widths=(1, 3, 5), num_filters=(8, 16, 32),
                     strides=(1, 2), learning_rate=0.05, batch_size=64)


def run_rlsearch_vanilla(args, data, budget):
    import keras_rlnas
    from keras_rlnas import retrain

    (x, y), validation, _ = data
    _, _, search_deadline, _ = _callbacks()
    options = {**VANILLA_SPACE, "epochs": args.trial_epochs, **json.loads(args.vanilla_options or "{}")}
    space = keras_rlnas.VanillaNAS(INPUT_SHAPE, NUM_CLASSES, **options)
    tuner = keras_rlnas.RLSearch(space, objective="val_accuracy", reward="nas", max_trials=100_000, update_every=4,
                                 seed=args.seed, directory=args.directory, project_name=cell_name(args),
                                 overwrite=True)
    x_trial, y_trial = trial_subset(data, args.trial_images, args.seed)
    deadline = search_deadline(tuner.oracle, budget.search_deadline)
    began = time.time()
    tuner.search(x_trial, y_trial, validation_data=validation, callbacks=[deadline], verbose=0)
    seconds_search = time.time() - began
    best = tuner.oracle.get_best_trials(1)[0]
    began = time.time()
    model = retrain.retrain(space, best.hyperparameters, *final_training_data(args, x, y), epochs=args.max_final_epochs,
                            batch_size=FINAL_BATCH_SIZE, time_budget=budget.left(), seed=args.seed,
                            verbose=args.verbose)
    return {
        "model": model, "seconds_search": seconds_search, "seconds_train": time.time() - began,
        "details": {"trials": len(tuner.oracle.trials), "controller_updates": len(tuner.oracle.updates),
                    "best_val_accuracy_in_search": best.score, "space": {k: v for k, v in options.items()},
                    "architecture": space.describe(best.hyperparameters.copy()),
                    "final_epochs": len(model.history.epoch)},
    }


def enas_tail_images(tuner):
    """Images an ENAS epoch scores after its omega phase: controller rewards, derivation candidates, finalists."""
    from keras_rlnas.tuners.derivation import FINALIST_IMAGES

    rewards = tuner.controller_steps * tuner.controller_batch if tuner.sampler == "controller" else 0
    return (rewards + tuner.derive_samples) * tuner.validation_batch_size + tuner.derive_finalists * FINALIST_IMAGES


def enas_final_images(tuner):
    """Training images of the finalists' fine-tuning when an ENAS search ends."""
    from keras_rlnas.supernet.fine_tuning import FINE_TUNE_BATCH_SIZE

    return (tuner.derive_finalists + 1) * tuner.fine_tune_steps * FINE_TUNE_BATCH_SIZE


def run_enas(args, data, budget):
    import keras_rlnas

    (x, y), validation, _ = data
    _, _, _, enas_clock = _callbacks()
    macro = args.system == "enas-macro"
    if macro:
        space = keras_rlnas.ENASMacro(INPUT_SHAPE, NUM_CLASSES, num_layers=args.enas_layers or 6,
                                      filters=args.enas_filters or 24, stem_strides=args.enas_stem_strides)
    else:
        space = keras_rlnas.ENASMicro(INPUT_SHAPE, NUM_CLASSES, num_cells=args.enas_layers or 1,
                                      filters=args.enas_filters or 16, stem_strides=args.enas_stem_strides)
    tuner = keras_rlnas.ENASTuner(space, seed=args.seed, directory=args.directory, project_name=cell_name(args),
                                  overwrite=True, **json.loads(args.enas_options or "{}"))
    clock = enas_clock(x, y, tuner.batch_size, args.trial_images, enas_tail_images(tuner), budget.search_deadline,
                       seed=args.seed, final_images=enas_final_images(tuner))
    search_began = time.time()
    # With fine-tuned finalists only the clock may end the search: their fine-tuning reads the clock's data,
    # which it serves whole once it has ended the search, not when the tuner's time budget does.
    time_budget = None if tuner.fine_tune_steps else max(1.0, budget.search_deadline - search_began)
    tuner.search(clock.dataset(), validation_data=validation, epochs=100_000, callbacks=[clock],
                 time_budget=time_budget, verbose=1)
    seconds_search = time.time() - search_began
    best = tuner.oracle.get_best_trials(1)[0]
    began = time.time()
    model = tuner.retrain(best.hyperparameters, *final_training_data(args, x, y), epochs=args.max_final_epochs,
                          filters=args.retrain_filters, time_budget=budget.left(), verbose=args.verbose)
    return {
        "model": model, "seconds_search": seconds_search, "seconds_train": time.time() - began,
        "details": {"enas_epochs": tuner.epochs_done, "omega_phases_cut_at_deadline": clock.cut_epochs,
                    "fine_tuned_finalists": tuner.fine_tuned,
                    "epoch_timings": clock.epochs,
                    "seconds_before_first_omega": round(clock.first_omega_began - search_began, 1),
                    "best_shared_weight_val_accuracy": best.score, "space": space.get_config(),
                    "architecture": best.hyperparameters.values, "retrain_filters": args.retrain_filters,
                    "retrain_cutout": args.retrain_cutout,
                    "final_epochs": len(model.history.epoch)},
    }


def run_autokeras(args, data, budget):
    """Runs `peers_autokeras.py` in AutoKeras's virtualenv on the same arrays, passed as an .npz file."""
    python = Path(args.autokeras_python)
    if not python.exists():
        raise SystemExit(f"{python} not found: create it with `bash benchmarks/setup_autokeras.sh`.")
    (x, y), (x_val, y_val), (x_test, y_test) = data
    with tempfile.TemporaryDirectory(prefix="peers-autokeras-") as folder:
        arrays = os.path.join(folder, "fashion_mnist.npz")
        np.savez(arrays, x_train=x, y_train=y, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test)
        command = [str(python), str(AUTOKERAS_RUNNER), "--data", arrays, "--budget-seconds", str(budget.seconds),
                   "--search-fraction", str(budget.search_fraction), "--seed", str(args.seed),
                   "--directory", os.path.join(args.directory, cell_name(args))]
        if args.autokeras_epochs:
            command += ["--epochs", str(args.autokeras_epochs)]
        began = time.time()
        completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        seconds = time.time() - began
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode or not lines:
        sys.stdout.write(completed.stdout)
        raise SystemExit(f"peers_autokeras.py failed (exit {completed.returncode}).")
    result = json.loads(lines[-1])
    result["details"]["seconds_subprocess"] = seconds
    return result


RUNNERS = {
    "enas-macro": run_enas, "enas-micro": run_enas, "rlsearch-vanilla": run_rlsearch_vanilla,
    "kt-random": run_keras_tuner, "kt-hyperband": run_keras_tuner, "autokeras": run_autokeras,
    "cnn-bn": run_cnn_bn,
}


# --------------------------------------------------------------------------- one cell
def cell_key(record):
    """What identifies a cell: system, budget, seed, (for a search) the search share and the variant."""
    return (record["system"], float(record["budget_minutes"]), int(record["seed"]), record.get("search_fraction"),
            record.get("variant"))


def variant(args):
    """What sets a cell's system apart from its default, e.g. `"stem stride 2"`; `None` for the default."""
    augmented = [f"final crop {args.final_augment} + flip"] if args.final_augment else []
    if args.system not in ("enas-macro", "enas-micro"):
        return ", ".join(augmented) or None
    parts = []
    if args.enas_stem_strides != 1:
        parts.append(f"stem stride {args.enas_stem_strides}")
    if args.retrain_filters:
        parts.append(f"retrain width {args.retrain_filters}")
    if args.retrain_cutout:
        parts.append(f"cutout {args.retrain_cutout}")
    for name, value in sorted(json.loads(args.enas_options or "{}").items()):
        parts.append(f"{name}={json.dumps(value)}")
    return ", ".join(parts + augmented) or None


def search_fraction(args):
    """The search's share of the budget: `None` without a search, all of it for AutoKeras without `--autokeras-epochs`.

    With `epochs=None` AutoKeras keeps the best trial's model and trains no
    final model, so its search gets the whole budget.
    """
    if args.system not in SEARCHING:
        return None
    if args.system == "autokeras" and not args.autokeras_epochs:
        return 1.0
    return args.search_fraction


def cell_name(args):
    name = args.system + (f"-{variant(args).replace(' ', '').replace(',', '-')}" if variant(args) else "")
    return f"{name}-{args.budget_minutes:g}min-seed{args.seed}"


def read_results(path):
    """The recorded cells, the last line of each key winning."""
    if not Path(path).exists():
        return []
    cells = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            cells[cell_key(record)] = record
    return list(cells.values())


def accuracy(model, x, y):
    probabilities = model.predict(x, batch_size=SCORE_BATCH_SIZE, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=-1) == y))


def machine():
    """Machine facts without the host name."""
    model_name = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model_name,
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def versions():
    import keras
    import keras_tuner
    import tensorflow as tf

    import keras_rlnas

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "keras_tuner": keras_tuner.__version__,
            "keras_rlnas": keras_rlnas.__version__, "numpy": np.__version__}


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_cell(args):
    load_start = os.getloadavg()
    wall_began = time.time()
    commit = git_commit()  # the code this run imports, not what is checked out when it ends
    import keras

    import keras_rlnas

    keras.utils.set_random_seed(args.seed)
    (x, y), validation, test, _ = keras_rlnas.datasets.load_arrays("fashion_mnist")
    data = ((x, y), validation, test)
    fraction = search_fraction(args)
    budget = Budget(args.budget_minutes * 60, fraction)
    print(f"{cell_name(args)}: budget {budget.seconds:.0f} s"
          + (f", search share {fraction:g}" if fraction else ""), flush=True)
    outcome = RUNNERS[args.system](args, data, budget)
    # AutoKeras reports its own: its budget starts after its imports and data load.
    seconds_budgeted = outcome.get("seconds_budgeted", time.time() - budget.start)
    if "model" in outcome:
        model = outcome.pop("model")
        outcome.update(test_accuracy=accuracy(model, *test), validation_accuracy=accuracy(model, *validation),
                       parameters=int(model.count_params()), versions=versions())
    overrun = seconds_budgeted - budget.seconds
    record = {
        "system": args.system,
        "budget_minutes": args.budget_minutes,
        "seed": args.seed,
        "search_fraction": fraction,
        "variant": variant(args),
        "test_accuracy": outcome["test_accuracy"],
        "validation_accuracy": outcome["validation_accuracy"],
        "parameters": outcome["parameters"],
        "seconds_search": round(outcome["seconds_search"], 1),
        "seconds_train": round(outcome["seconds_train"], 1),
        "seconds_budgeted": round(seconds_budgeted, 1),
        "overrun_seconds": round(overrun, 1),
        "within_budget": overrun <= max(5.0, BUDGET_TOLERANCE * budget.seconds),
        "seconds_total": round(time.time() - wall_began, 1),
        "load_average_start": [round(v, 2) for v in load_start],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "versions": outcome["versions"],
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "command": "python benchmarks/peers.py " + shlex.join(sys.argv[1:]),
        "details": outcome.get("details", {}),
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as results:
        results.write(json.dumps(record) + "\n")
    print(f"{cell_name(args)}: test accuracy {record['test_accuracy']:.4f}, {record['parameters']:,} parameters, "
          f"search {record['seconds_search']:.0f} s + training {record['seconds_train']:.0f} s "
          f"(budget {budget.seconds:.0f} s, overrun {overrun:+.1f} s); recorded in {args.results}")
    return record


# --------------------------------------------------------------------------- table and plot
def groups(records):
    """`{(system, search_fraction, variant): {budget_minutes: [records]}}`."""
    grouped = {}
    for record in records:
        key = (record["system"], record.get("search_fraction"), record.get("variant"))
        by_budget = grouped.setdefault(key, {})
        by_budget.setdefault(float(record["budget_minutes"]), []).append(record)
    return grouped


def label(system, fraction, variant=None):
    notes = ([] if fraction in (None, 0.5) else [f"search {fraction:g}"]) + ([variant] if variant else [])
    return system + (f" ({', '.join(notes)})" if notes else "")


def mean_sd(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None


def table(records):
    """The markdown table: one row per system and budget, mean +- sd over seeds."""
    lines = [
        "| system | budget (min) | test accuracy | seeds | parameters | search / final training (min) | load average |",
        "|---|---|---|---|---|---|---|",
    ]
    order = {system: i for i, system in enumerate(SYSTEMS)}
    grouped = groups(records)
    for system, fraction, kind in sorted(grouped, key=lambda key: (order.get(key[0], 99), key[1] or 0, key[2] or "")):
        for budget, cells in sorted(grouped[(system, fraction, kind)].items()):
            mean, sd = mean_sd([c["test_accuracy"] for c in cells])
            shown = f"{mean:.4f}" + (f" +- {sd:.4f}" if sd is not None else "")
            parameters = f"{np.mean([c['parameters'] for c in cells]):,.0f}"
            search = np.mean([c["seconds_search"] for c in cells]) / 60
            train = np.mean([c["seconds_train"] for c in cells]) / 60
            load = np.mean([c["load_average_start"][0] for c in cells])
            late = sum(not c["within_budget"] for c in cells)
            note = f" ({late} over budget)" if late else ""
            lines.append(f"| {label(system, fraction, kind)} | {budget:g} | {shown}{note} | {len(cells)} | {parameters} "
                         f"| {search:.1f} / {train:.1f} | {load:.1f} |")
    return "\n".join(lines)


def plot(records, path):
    """Test accuracy against budget, one line per system, error bars one sd over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for (system, fraction, kind), by_budget in sorted(groups(records).items(),
                                                      key=lambda item: (item[0][0], item[0][2] or "")):
        budgets = sorted(by_budget)
        stats = [mean_sd([c["test_accuracy"] for c in by_budget[b]]) for b in budgets]
        axes.errorbar(budgets, [m for m, _ in stats], yerr=[sd or 0.0 for _, sd in stats], marker="o",
                      capsize=3, label=label(system, fraction, kind))
    axes.set_xlabel("wall-clock budget, search + final training (minutes)")
    axes.set_ylabel("Fashion-MNIST test accuracy")
    axes.set_title("Same budget, same CPU: test accuracy against budget")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


# --------------------------------------------------------------------------- command line
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=SYSTEMS)
    parser.add_argument("--budget-minutes", type=float, help="wall-clock budget of search + final training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search-fraction", type=float, default=0.5,
                        help="share of the budget for the search (0.5); the final training gets the rest")
    parser.add_argument("--results", default=str(DEFAULT_RESULTS), help="JSON-lines file the cell is appended to")
    parser.add_argument("--force", action="store_true", help="run the cell even if it is already recorded")
    parser.add_argument("--table", action="store_true", help="print the markdown table of the results")
    parser.add_argument("--plot", metavar="PNG", help="draw test accuracy against budget")
    parser.add_argument("--directory", default=str(ROOT / "runs" / "peers"), help="tuners' working files")
    parser.add_argument("--trial-images", type=int, default=12_000,
                        help="training images each search trial (or ENAS epoch) sees (12,000)")
    parser.add_argument("--trial-epochs", type=int, default=2, help="epochs per trial: kt-random, rlsearch-vanilla")
    parser.add_argument("--hyperband-max-epochs", type=int, default=9)
    parser.add_argument("--max-final-epochs", type=int, default=200,
                        help="most epochs of retrain(); the count is fitted to the time left")
    parser.add_argument("--enas-layers", type=int, help="macro layers (6) / micro cells per stage (1)")
    parser.add_argument("--enas-filters", type=int, help="search width: macro 24, micro 16")
    parser.add_argument("--enas-stem-strides", type=int, default=1,
                        help="stride of the ENAS spaces' stem convolution (1, as in the papers; 2 quarters the maps)")
    parser.add_argument("--retrain-filters", type=int, help="width of the retrained ENAS child (search width)")
    parser.add_argument("--retrain-cutout", type=int, help="side of the cutout square in the ENAS child's retraining")
    parser.add_argument("--final-augment", type=int, metavar="PAD",
                        help="final training (not AutoKeras's) on images shifted by up to PAD pixels and flipped")
    parser.add_argument("--enas-options", help="JSON of extra ENASTuner options")
    parser.add_argument("--vanilla-options", help="JSON over the VanillaNAS space options")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 2), help="2: a line per final-training epoch")
    parser.add_argument("--autokeras-python", default=str(AUTOKERAS_PYTHON))
    parser.add_argument("--autokeras-epochs", type=int, help="epochs per AutoKeras trial (AutoKeras's default)")
    args = parser.parse_args(argv)
    if not (args.table or args.plot) and (args.system is None or args.budget_minutes is None):
        parser.error("a cell needs --system and --budget-minutes (or use --table / --plot)")
    if not 0 < args.search_fraction < 1:
        parser.error("--search-fraction must be in (0, 1)")
    if args.final_augment is not None and (args.final_augment < 0 or args.system == "autokeras"):
        parser.error(f"--final-augment takes a pad of 0 pixels or more for a system other than autokeras "
                     f"(AutoKeras augments inside its own search), got {args.final_augment} for {args.system}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.system is not None:
        probe = {"system": args.system, "budget_minutes": args.budget_minutes, "seed": args.seed,
                 "search_fraction": search_fraction(args), "variant": variant(args)}
        done = {cell_key(record) for record in read_results(args.results)}
        if cell_key(probe) in done and not args.force:
            print(f"{cell_name(args)} is already in {args.results}; --force runs it again.")
        else:
            run_cell(args)
    records = read_results(args.results)
    if args.table:
        print(table(records) if records else f"no cells in {args.results} yet")
    if args.plot:
        if records:
            plot(records, args.plot)
        else:
            print(f"no cells in {args.results} yet: nothing to plot")


if __name__ == "__main__":
    main()
