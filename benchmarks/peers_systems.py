"""The systems benchmarks/peers.py compares: each searches (or not) and trains its final model inside a budget.

`RUNNERS[system](args, data, budget)` runs one system on `data`
(`((x, y), validation, test)`) and returns its final `model` (or, for
AutoKeras, its scores), the seconds it searched and trained, and details
for the results file.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from beyond_size import largest_child
from peers_deadlines import deadline_callbacks
from peers_results import ENAS_SYSTEMS, cell_name

AUTOKERAS_RUNNER = Path(__file__).resolve().parent / "peers_autokeras.py"
#: Minibatch of the Keras Tuner systems' trials (ENAS and RLSearch take their spaces' own).
TRIAL_BATCH_SIZE = 128


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


def train_until(model, x, y, deadline, batch_size, verbose=0):
    """Trains a compiled `model` on all of `(x, y)` until `deadline`, learning rate on a wall-clock cosine.

    `x` may be a batched `tf.data.Dataset` (`final_training_data`), `y` then `None`.
    """
    stop_at_deadline, cosine_to_deadline, _, _ = deadline_callbacks()
    batching = {"shuffle": False} if y is None else {"batch_size": batch_size, "shuffle": True}
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
    cutout = args.retrain_cutout if args.system in ENAS_SYSTEMS else None
    if not (args.final_augment or cutout):
        return x, y
    from keras_rlnas.retrain import training_batches

    batches, _ = training_batches(x, y, args.final_batch_size, cutout, args.seed, pad=args.final_augment,
                                  flip=bool(args.final_augment))
    return batches, None


def trial_subset(data, images, seed):
    """A seeded random subset of `images` training images for the searches' trials."""
    (x, y), _, _ = data
    index = np.random.default_rng(seed).permutation(len(x))[:images]
    return x[index], y[index]


def run_cnn_bn(args, data, budget):
    (x, y), _, _ = data
    model = cnn_bn()
    began = time.time()
    epochs = train_until(model, *final_training_data(args, x, y), budget.final_deadline, args.final_batch_size,
                         args.verbose)
    return {"model": model, "seconds_search": 0.0, "seconds_train": time.time() - began,
            "details": {"final_epochs": epochs}}


def run_keras_tuner(args, data, budget):
    import keras_tuner

    (x, y), validation, _ = data
    _, _, search_deadline, _ = deadline_callbacks()
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
    tuner.search(x_trial, y_trial, validation_data=validation, batch_size=TRIAL_BATCH_SIZE,
                 callbacks=[deadline], verbose=0, **fit)
    seconds_search = time.time() - began
    best = tuner.oracle.get_best_trials(1)[0]
    model = cnn_hypermodel(best.hyperparameters)
    began = time.time()
    epochs = train_until(model, *final_training_data(args, x, y), budget.final_deadline, args.final_batch_size,
                         args.verbose)
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
    _, _, search_deadline, _ = deadline_callbacks()
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
                            batch_size=args.final_batch_size, time_budget=budget.left(), seed=args.seed,
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
    _, _, _, enas_clock = deadline_callbacks()
    macro = args.system == "enas-macro"
    if macro:
        space = keras_rlnas.ENASMacro(INPUT_SHAPE, NUM_CLASSES, num_layers=args.enas_layers or 6,
                                      filters=args.enas_filters or 24, stem_strides=args.enas_stem_strides)
    else:
        space = keras_rlnas.ENASMicro(INPUT_SHAPE, NUM_CLASSES, num_cells=args.enas_layers or 1,
                                      filters=args.enas_filters or 16, stem_strides=args.enas_stem_strides)
    tuner = keras_rlnas.ENASTuner(space, seed=args.seed, directory=args.directory, project_name=cell_name(args),
                                  overwrite=True, **json.loads(args.enas_options or "{}"))
    if args.random_child or args.largest_of:
        return retrain_unsearched_child(args, (x, y), tuner, budget)
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
                          batch_size=args.final_batch_size, filters=args.retrain_filters, time_budget=budget.left(),
                          verbose=args.verbose)
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


def retrain_unsearched_child(args, training, tuner, budget):
    """The control of an ENAS cell: a child drawn uniformly (by `--seed`), retrained in the minutes a search leaves.

    With `--largest-of N`, the child with the most parameters of N so drawn:
    a size rule in place of a search (its drawing and counting are its
    search time).

    What the search adds to its cell is the searched cell's score minus this
    one's, every other setting (stem, width, augmentation, retraining time)
    alike.
    """
    space = tuner.space
    drawn_at = time.time()
    if args.largest_of:
        seeds = np.random.default_rng(args.seed).integers(2**31, size=args.largest_of)
        values = space.decode(largest_child(space, seeds))
    else:
        values = space.decode(space.random_encoding(args.seed))
    seconds_search = time.time() - drawn_at
    began = time.time()
    model = tuner.retrain(values, *final_training_data(args, *training), epochs=args.max_final_epochs,
                          batch_size=args.final_batch_size, filters=args.retrain_filters,
                          time_budget=budget.seconds * (1 - budget.search_fraction),
                          verbose=args.verbose)
    return {
        "model": model, "seconds_search": seconds_search, "seconds_train": time.time() - began,
        "details": {"space": space.get_config(), "architecture": values, "random_child": not args.largest_of,
                    "largest_of": args.largest_of,
                    "retrain_filters": args.retrain_filters, "retrain_cutout": args.retrain_cutout,
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
