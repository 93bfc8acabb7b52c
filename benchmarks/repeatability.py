"""Does the same seeded ENAS search repeat itself, step for step, from one run to the next?

Runs the same search (macro 6 x 16 by default, 12,000 Fashion-MNIST images,
`ENASTuner(seed=0)` after `keras.utils.set_random_seed(0)`, one ENAS epoch)
`--runs` times, each in a process of its own, and compares what each omega
step trained on and the loss it reported. Printed per setting: the first
step at which a run parts from the first run (the same images and child,
another loss), the largest loss difference there, and the derived child of
each run. With `--grappler both`, the search runs with TensorFlow's graph
optimiser on (the default) and off (`ENASTuner(grappler=False)`).

    python benchmarks/repeatability.py
    python benchmarks/repeatability.py --runs 3 --epochs 2 --grappler both
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--limit", type=int, default=12000, help="training images")
    parser.add_argument("--epochs", type=int, default=1, help="ENAS epochs per run")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--grappler", choices=("on", "off", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one-run", default=None, metavar="JSON", help=argparse.SUPPRESS)
    return parser.parse_args()


def one_run(args, grappler):
    """The search in this process: every omega step's minibatch, child and loss, and the derived child."""
    import hashlib

    import keras
    import numpy as np

    import keras_rlnas

    (x, y), (x_val, y_val), _, info = keras_rlnas.datasets.load_arrays("fashion_mnist", limit=args.limit)
    space = keras_rlnas.ENASMacro(info.input_shape, info.num_classes, num_layers=args.layers, filters=args.filters)
    keras.utils.set_random_seed(args.seed)
    tuner = keras_rlnas.ENASTuner(space, seed=args.seed, grappler=grappler, directory=tempfile.mkdtemp(),
                                  project_name="repeat", verbose=0)
    steps, build = [], tuner._build_supernet

    def build_and_record():
        build()
        train_step = tuner.supernet.train_step

        def recorded(images, labels, arch):
            result = train_step(images, labels, arch)
            minibatch = hashlib.md5(np.ascontiguousarray(images).tobytes()).hexdigest()[:12]
            steps.append([minibatch, np.asarray(arch).tolist(), float(result["loss"])])
            return result

        tuner.supernet.train_step = recorded

    tuner._build_supernet = build_and_record
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=args.epochs)
    return {"steps": steps, "derived": dict(tuner.get_best_hyperparameters(1)[0].values)}


def first_parting(first, other):
    """`(step, loss difference)` where `other` first reports another loss for the same step, or `None`."""
    for index, (a, b) in enumerate(zip(first["steps"], other["steps"])):
        if a[:2] != b[:2] or a[2] != b[2]:
            return index, abs(a[2] - b[2]) if a[:2] == b[:2] else float("nan")
    return None


def main():
    args = parse_arguments()
    if args.one_run:
        grappler = os.environ["REPEAT_GRAPPLER"] == "on"
        json.dump(one_run(args, grappler), open(args.one_run, "w"))
        return
    settings = ("on", "off") if args.grappler == "both" else (args.grappler,)
    print(f"load average at start {os.getloadavg()}", flush=True)
    for setting in settings:
        runs = []
        for _ in range(args.runs):
            began = time.time()
            path = os.path.join(tempfile.mkdtemp(prefix="repeatability_"), "run.json")
            argv = [sys.executable, __file__, "--one-run", path, "--layers", str(args.layers), "--filters",
                    str(args.filters), "--limit", str(args.limit), "--epochs", str(args.epochs), "--seed", str(args.seed)]
            subprocess.run(argv, check=True, env={**os.environ, "REPEAT_GRAPPLER": setting})
            runs.append(json.load(open(path)))
            print(f"grappler {setting}: run {len(runs)} took {time.time() - began:.0f} s", flush=True)
        total = len(runs[0]["steps"])
        for number, run in enumerate(runs[1:], start=2):
            parting = first_parting(runs[0], run)
            where = "every step repeats" if parting is None else (
                f"parts at step {parting[0]} (loss difference {parting[1]:.2e})")
            same_child = run["derived"] == runs[0]["derived"]
            print(f"grappler {setting}: run {number} against run 1 over {total} omega steps: {where}; "
                  f"derived child {'the same' if same_child else 'another'}")
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
