"""The main job's final training: which optimizer, learning rate and minibatch fill its 10.5 minutes best?

`scripts/demo.sh` retrains the derived child (ENAS macro, 6 layers x 24
filters) on all 55,000 Fashion-MNIST training images for 10.5 minutes with the
space's recipe: Nesterov SGD from a peak rate of 0.05 annealed to a hundredth
of it on the clock, minibatches of 128. This script retrains one child to the
same time budget once per `--recipe` and prints, per recipe, the epochs done,
the validation accuracy after each epoch and the test accuracy (scored once,
after training); every row is also appended to `--results` as a JSON line with
the load average at its start and end. A recipe is `OPTIMIZER:PEAK:BATCH`:
`sgd` (the space's Nesterov SGD) or `adam` (Adam, on the same clock-driven
cosine from PEAK to PEAK / 100, the child's L2 and dropout unchanged).

`--throughput` instead times training steps per `BATCH` or `BATCH/jit` spec
(`jit`: the child compiled with `jit_compile=True`, XLA on the CPU), the specs
measured round-robin `--repeats` times so that a busy host slows all of them
alike, the first epoch of each (graph building) untimed.

Commands
--------
    python benchmarks/retrain_recipe.py --recipe sgd:0.05:128 adam:0.001:128      # 10.5 min each
    python benchmarks/retrain_recipe.py --run runs/demo --recipe sgd:0.05:64       # the child of a CLI run
    python benchmarks/retrain_recipe.py --throughput 64 128 256 128/jit           # a few minutes

Each retraining takes its budget plus the data load; run nothing timed beside it.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_rlnas  # noqa: E402
from keras_rlnas import retrain  # noqa: E402

#: The child of the main job's twelfth run (`scripts/demo.sh`, search seed 1): a max-pool, four 5 x 5 and one
#: 3 x 3 convolution, 11 skips of 15, 71,698 parameters; 0.9177 after its 10.5-minute retraining there.
DEFAULT_CHILD = {
    "layers[0].op": "conv5x5", "layers[1].op": "conv5x5", "layers[1].skip[0]": True,
    "layers[2].op": "maxpool3x3", "layers[2].skip[0]": True, "layers[2].skip[1]": True,
    "layers[3].op": "conv5x5", "layers[3].skip[0]": True, "layers[3].skip[1]": True, "layers[3].skip[2]": False,
    "layers[4].op": "conv3x3", "layers[4].skip[0]": True, "layers[4].skip[1]": False, "layers[4].skip[2]": True,
    "layers[4].skip[3]": True, "layers[5].op": "conv5x5", "layers[5].skip[0]": True, "layers[5].skip[1]": False,
    "layers[5].skip[2]": True, "layers[5].skip[3]": True, "layers[5].skip[4]": True,
}
OPTIMIZERS = ("sgd", "adam")


def parse_recipe(spec):
    """`"adam:0.001:128"` -> `("adam", 0.001, 128)`."""
    try:
        optimizer, peak, batch = spec.split(":")
        peak, batch = float(peak), int(batch)
    except ValueError:
        raise SystemExit(f"a recipe is OPTIMIZER:PEAK:BATCH, e.g. sgd:0.05:128, got {spec!r}") from None
    if optimizer not in OPTIMIZERS or peak <= 0 or batch < 1:
        raise SystemExit(f"a recipe's optimizer is one of {OPTIMIZERS} with a positive rate and batch, got {spec!r}")
    return optimizer, peak, batch


def with_optimizer(optimizer, peak):
    """`retrain`'s child builder with its optimizer and the cosine's `(peak, peak / 100)` replaced."""
    space_builder = retrain._child_builder

    def child_builder(space, values, steps, filters, regularization):
        build, _ = space_builder(space, values, steps, filters, regularization)
        if optimizer == "sgd":
            return build, (peak, peak / 100)

        def build_with_adam(*args, **kwargs):
            model = build(*args, **kwargs)
            model.compile(keras.optimizers.Adam(peak), "sparse_categorical_crossentropy", metrics=["accuracy"])
            return model

        return build_with_adam, (peak, peak / 100)

    return child_builder


def retrain_with(space, child, data, recipe, args):
    """One retraining of `child` to the budget with `recipe`; returns its row of figures."""
    (x, y), validation, (x_test, y_test) = data
    optimizer, peak, batch = recipe
    space_builder, load = retrain._child_builder, os.getloadavg()[0]
    retrain._child_builder = with_optimizer(optimizer, peak)
    keras.utils.set_random_seed(args.seed)
    began = time.time()
    try:
        model = retrain.retrain(space, child, x, y, epochs=args.epochs, batch_size=batch, validation_data=validation,
                                time_budget=args.budget, seed=args.seed)
    finally:
        retrain._child_builder = space_builder
    seconds = time.time() - began
    accuracy = float(np.mean(np.argmax(model.predict(x_test, batch_size=500, verbose=0), axis=1) == y_test))
    return {"recipe": f"{optimizer}:{peak:g}:{batch}", "optimizer_class": type(model.optimizer).__name__,
            "seed": args.seed, "budget": args.budget, "seconds": round(seconds, 1),
            "epochs": len(model.history.epoch), "parameters": model.count_params(),
            "val_accuracy": [round(v, 4) for v in model.history.history["val_accuracy"]],
            "test_accuracy": round(accuracy, 4), "load_start": round(load, 2), "load_end": round(os.getloadavg()[0], 2),
            "child": args.run or args.architecture or "DEFAULT_CHILD", "date": time.strftime("%Y-%m-%d %H:%M"),
            "command": "python benchmarks/retrain_recipe.py " + " ".join(sys.argv[1:])}


def images_per_second(space, child, x, y, spec, epochs):
    """Training images per second of `child` for a `BATCH` or `BATCH/jit` spec, its first epoch untimed."""
    batch, _, jit = spec.partition("/")
    if jit not in ("", "jit"):
        raise SystemExit(f"a throughput spec is BATCH or BATCH/jit, got {spec!r}")
    model = space.build_child(child)
    model.compile(optimizer=model.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=bool(jit))
    seconds = []
    for _ in range(epochs):
        began = time.perf_counter()
        model.fit(x, y, batch_size=int(batch), epochs=1, verbose=0)
        seconds.append(time.perf_counter() - began)
    return len(x) / min(seconds[1:])


def load_child(args):
    if args.run:
        with open(os.path.join(args.run, "best", "architecture.json")) as file:
            return json.load(file)["hyperparameters"]
    if args.architecture:
        with open(args.architecture) as file:
            return json.load(file)
    return DEFAULT_CHILD


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", nargs="+", default=["sgd:0.05:128"], help="OPTIMIZER:PEAK:BATCH recipes")
    parser.add_argument("--budget", type=float, default=630.0, help="seconds of retraining (the main job's 10.5 min)")
    parser.add_argument("--run", help="a `keras-rlnas retrain` directory whose child to retrain")
    parser.add_argument("--architecture", help="JSON of the child's {name: value} (default: DEFAULT_CHILD)")
    parser.add_argument("--epochs", type=int, default=20, help="the epoch cap (the main job's)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the initialisation and data order")
    parser.add_argument("--results", default="benchmarks/results/retrain_recipe.jsonl")
    parser.add_argument("--throughput", nargs="*", metavar="SPEC", help="time BATCH or BATCH/jit specs instead")
    parser.add_argument("--images", type=int, default=12_800, help="--throughput: training images per epoch")
    parser.add_argument("--repeats", type=int, default=2, help="--throughput: round-robin passes over the specs")
    args = parser.parse_args()
    recipes = [parse_recipe(spec) for spec in args.recipe]
    child = load_child(args)
    (x, y), validation, test, info = keras_rlnas.datasets.load_arrays("fashion_mnist")
    space = keras_rlnas.ENASMacro(info.input_shape, info.num_classes, num_layers=6, filters=24)
    if args.throughput is not None:
        specs, loads = args.throughput or ["64", "128", "256"], [os.getloadavg()[0]]
        rates = {spec: [] for spec in specs}
        for _ in range(args.repeats):
            for spec in specs:
                rates[spec].append(images_per_second(space, child, x[:args.images], y[:args.images], spec, 3))
                loads.append(os.getloadavg()[0])
        for spec in specs:
            print(f"{spec:>9}: {max(rates[spec]):6.0f} images/s at best, {max(rates[spec]) / max(rates[specs[0]]):.2f} "
                  f"of {specs[0]}  ({' '.join(f'{r:.0f}' for r in rates[spec])})")
        print(f"load average (1 min) from {loads[0]:.2f} to {loads[-1]:.2f}, highest {max(loads):.2f}")
        return
    for recipe in recipes:
        row = retrain_with(space, child, ((x, y), validation, test), recipe, args)
        print(json.dumps(row), flush=True)
        with open(args.results, "a") as file:
            file.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
