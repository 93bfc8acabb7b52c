"""Same-budget comparison on Fashion-MNIST: keras-rlnas against what a Keras user would pick instead.

One invocation is one cell of the table: a system, a wall-clock budget and a
seed, on one CPU (the same cell on another CPU model is another measurement:
the budget buys fewer epochs on a slower one). It appends one JSON line to the
results file and skips a cell that is already there for this CPU (unless
`--force`), so the table can be filled over several sittings without rerunning
finished cells:

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
  `peers_systems.cnn_hypermodel` (conv blocks with tunable filters, kernel size and
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
flips the final training's images: `peers_systems.final_training_data`; `--final-batch-size N` trains
the final model on minibatches of N, 128 unless set). Searches train children on
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
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from peers_results import (
    ENAS_SYSTEMS,
    FINAL_BATCH_SIZE,
    RESULTS,
    SYSTEMS,
    cell_key,
    cell_name,
    plot,
    read_results,
    search_fraction,
    table,
    variant,
)
from peers_systems import RUNNERS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
AUTOKERAS_PYTHON = ROOT / ".venv-autokeras" / "bin" / "python"

#: A cell counts as within its budget when it overran by at most this share of it, or 5 s.
BUDGET_TOLERANCE = 0.01
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


# --------------------------------------------------------------------------- one cell


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


# --------------------------------------------------------------------------- command line
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=SYSTEMS)
    parser.add_argument("--budget-minutes", type=float, help="wall-clock budget of search + final training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--search-fraction", type=float, default=0.5,
                        help="share of the budget for the search (0.5); the final training gets the rest")
    parser.add_argument("--results", default=str(RESULTS), help="JSON-lines file the cell is appended to")
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
    parser.add_argument("--random-child", action="store_true",
                        help="ENAS systems: no search; a child drawn uniformly by --seed retrained in the time a search "
                             "would leave (the control of a searched cell)")
    parser.add_argument("--largest-of", type=int, metavar="N",
                        help="ENAS systems: no search; of N children drawn uniformly by --seed, the one with the most "
                             "parameters, retrained in the time a search would leave (a size rule without a search)")
    parser.add_argument("--retrain-cutout", type=int, help="side of the cutout square in the ENAS child's retraining")
    parser.add_argument("--final-augment", type=int, metavar="PAD",
                        help="final training (not AutoKeras's) on images shifted by up to PAD pixels and flipped")
    parser.add_argument("--final-batch-size", type=int, default=FINAL_BATCH_SIZE,
                        help=f"minibatch of the final training, not AutoKeras's ({FINAL_BATCH_SIZE})")
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
    if args.final_batch_size < 1 or (args.system == "autokeras" and args.final_batch_size != FINAL_BATCH_SIZE):
        parser.error(f"--final-batch-size takes a minibatch of 1 or more for a system other than autokeras, "
                     f"got {args.final_batch_size} for {args.system}")
    if args.random_child and args.system not in ENAS_SYSTEMS:
        parser.error(f"--random-child is the control of an ENAS cell ({', '.join(ENAS_SYSTEMS)}), got --system {args.system}")
    if args.largest_of is not None and (args.system not in ENAS_SYSTEMS or args.random_child or args.largest_of < 2):
        parser.error(f"--largest-of takes N >= 2 children of an ENAS cell ({', '.join(ENAS_SYSTEMS)}) without "
                     f"--random-child, got {args.largest_of} for {args.system}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.system is not None:
        probe = {"system": args.system, "budget_minutes": args.budget_minutes, "seed": args.seed,
                 "search_fraction": search_fraction(args), "variant": variant(args), "machine": machine()}
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
