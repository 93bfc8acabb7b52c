"""Does the search pay? The ENAS child against random children, same retraining.

Method
------
1. Two searches on the same data, supernet seed and epochs: `ENASTuner` with
   its defaults (the controller), and `ENASTuner(sampler="uniform")` (random
   search with weight sharing: the same supernet training and the same
   derivation, the children drawn uniformly). Each yields its derived child.
   With `--searchers size`, the size rule too: of `--largest-of` children
   drawn uniformly, the one with the most parameters (nothing trained).
2. `--random` children drawn uniformly from the space.
3. Every child is retrained from scratch with one recipe
   (`keras_rlnas.retrain.retrain`, the same epochs, minibatch and seeds) and
   scored once on the test images; the derived children are retrained with
   `--seeds` seeds each, the random ones with the first seed.
4. The ENAS child's margin over the random children's mean, in units of their
   spread, with a 90 % bootstrap interval of the margin (random children and
   the derived child's seed runs resampled).

    python benchmarks/enas_vs_random.py                       # macro 6 x 16, 12,000 images (~30 min, 2 cores)
    python benchmarks/enas_vs_random.py --space micro --layers 1 --filters 12
    python benchmarks/enas_vs_random.py --quick               # a smoke run of a few minutes
    python benchmarks/enas_vs_random.py --seed 1 --json seed1.json   # another search seed
    python benchmarks/enas_vs_random.py --finalist-epochs 1 --random-from seed0.json   # both searches end with
                                              # finalists trained from scratch; seed 0's random children reused
    python benchmarks/enas_vs_random.py --finalist-epochs 3 --uniform-finalists 6 --random-from seed0.json \
        --json uniform6_seed0.json                          # six uniformly drawn candidates join the finalists
    python benchmarks/enas_vs_random.py --searchers size --random-from seed0.json --json size_seed0.json
                                              # the size rule alone: of 100 children drawn uniformly, the largest
    python benchmarks/enas_vs_random.py --pool seed0.json seed1.json  # the runs together
    python benchmarks/enas_vs_random.py --searchers controller --controller-options '{"skip_weight": 20}' \
        --random-from seed0.json --json skips_seed0.json    # the ENAS search alone, other controller options
    python benchmarks/enas_vs_random.py --searchers controller --omega-sampler controller --random-from seed0.json \
        --json papers_loop_seed0.json                       # the controller's own samples train the shared weights

With `--pool`, saved runs (`--json`) of different `--seed`s and otherwise the
same settings are read, not rerun: each search seed gives one derived child
(its retraining seeds averaged) per searcher, the random children are pooled,
and the bootstrap resamples search seeds and random children.

A random child's test accuracy mixes what its architecture is worth with the
noise of one retraining. `--retrain-more` (with `--json`) retrains every child
of saved runs, derived and random, until each has `--retrain-seeds` seeds
(the saved scores are kept: seed `k` of a run is `--seed + 1 + k`), then pools
the runs on per-child means. It reports the retraining noise, the spread of the
random architectures with that noise taken out, and each searcher's margin in
units of the spread of the random children's means:

    python benchmarks/enas_vs_random.py --retrain-more seed0.json seed1.json seed2.json --retrain-seeds 3 --json more.json

It ends with what the random children's means go with: Kendall's tau-b of
their scores with each op's count (and, macro, 5 x 5 kernels, pools in the
first third of the layers, skips), beside how often each searcher's children
have it: where a searcher's choices part from what standalone training rewards;
then what each searcher finds beyond size (`beyond_size.py`: its children's
residual from the random children's means fitted on the log of their parameter
count, every child counted at the space's width).

`--retrained-from more.json` reuses the retrainings an earlier `--retrain-more`
saved, so adding a search seed retrains only its own children:

    python benchmarks/enas_vs_random.py --retrain-more seed0.json ... seed3.json --retrained-from more.json --json more4.json

Runs that differ only in how the searches end or which searches run
(`--finalist-epochs`, `--uniform-finalists`, `--fine-tune-steps`,
`--controller-options`, `--searchers`, `--largest-of`, with `--random-from`) share their random children, whose
retrainings `--retrained-from` then reuses.
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from beyond_size import largest_child, parameter_count  # noqa: E402  (this folder is on the path)
from vs_random_runs import (  # noqa: E402
    ENAS_SEARCHERS,
    SEARCHERS,
    SIZE_RULE_DRAWS,
    make_space,
    margin_figures,
    pool,
    retrain_more,
    saved_random,
    test_accuracy,
)

import keras_rlnas  # noqa: E402
from keras_rlnas.supernet.fine_tuning import FINE_TUNE_STEPS  # noqa: E402

QUICK = dict(limit=2000, validation=500, test=1000, search_epochs=2, retrain_epochs=1, random=3, seeds=1)


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", choices=("macro", "micro"), default="macro")
    parser.add_argument("--layers", type=int, default=None, help="macro layers (6) / micro cells per stage (1)")
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--limit", type=int, default=12000, help="training images")
    parser.add_argument("--validation", type=int, default=2000, help="validation images for the search")
    parser.add_argument("--test", type=int, default=10000, help="test images, scored once per child")
    parser.add_argument("--search-epochs", type=int, default=10)
    parser.add_argument("--retrain-epochs", type=int, default=3)
    parser.add_argument("--random", type=int, default=6, help="uniformly random children (>= 5)")
    parser.add_argument("--seeds", type=int, default=2, help="retraining seeds of each derived child")
    parser.add_argument("--batch", type=int, default=128, help="retraining minibatch")
    parser.add_argument(
        "--fine-tune-steps", type=int, default=0,
        help="ENASTuner(fine_tune_steps=...): the finalists' training of their own when a search ends "
        f"(0, the tuner's default: none; {FINE_TUNE_STEPS} is the module's setting)",
    )
    parser.add_argument(
        "--finalist-epochs", type=int, default=0,
        help="ENASTuner(finalist_epochs=...): when a search ends, its finalists each train this many epochs "
        "from scratch and the best on validation is derived (0, the tuner's default: none)",
    )
    parser.add_argument(
        "--uniform-finalists", type=int, default=0,
        help="ENASTuner(uniform_finalists=...): with --finalist-epochs, this many uniformly drawn architectures "
        "join the finalists trained from scratch (0, the tuner's default)",
    )
    parser.add_argument(
        "--controller-options", type=json.loads, default=None, metavar="JSON",
        help='ENASTuner(controller_options=...) of the ENAS search, e.g. \'{"skip_weight": 20}\' (default: the tuner\'s)',
    )
    parser.add_argument(
        "--omega-sampler", choices=("uniform", "fair", "controller"), default=None,
        help="ENASTuner(omega_sampler=...) of the ENAS search: what trains the shared weights while the controller "
        "learns (default: the tuner's, uniform children; controller: its own samples, the ENAS papers' loop)",
    )
    parser.add_argument(
        "--searchers", nargs="+", choices=SEARCHERS, default=ENAS_SEARCHERS,
        help="the searches run: the controller (ENAS), weight-sharing random search (uniform) and, when named, "
        "the size rule (size: of --largest-of children drawn uniformly, the one with the most parameters; "
        "no training)",
    )
    parser.add_argument("--largest-of", type=int, default=None,
                        help=f"children the size rule draws ({SIZE_RULE_DRAWS}; with --searchers size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--random-from", default=None, metavar="JSON",
        help="a saved run of the same --seed and settings: reuse its random children's scores",
    )
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    parser.add_argument("--pool", nargs="+", default=None, metavar="JSON", help="pool saved runs (see above)")
    parser.add_argument(
        "--retrain-more", nargs="+", default=None, metavar="JSON",
        help="saved runs (see above): retrain every child until it has --retrain-seeds seeds, then pool",
    )
    parser.add_argument("--retrain-seeds", type=int, default=3, help="with --retrain-more: seeds per child")
    parser.add_argument("--retrained-from", default=None, metavar="JSON", help="with --retrain-more: reuse its retrainings")
    parser.add_argument("--quick", action="store_true", help="smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.layers is None:
        args.layers = 6 if args.space == "macro" else 1
    if args.retrain_seeds < 2:
        parser.error(f"--retrain-seeds must be at least 2 for the retraining noise, got {args.retrain_seeds}.")
    if args.random < 2:
        parser.error(f"--random must be at least 2 for a spread, got {args.random}.")
    if args.controller_options is not None and not isinstance(args.controller_options, dict):
        parser.error(f"--controller-options must be a JSON object of Controller options, got {args.controller_options!r}.")
    args.searchers = list(dict.fromkeys(args.searchers))  # each search once, in the order given
    if "size" not in args.searchers and args.largest_of is not None:
        parser.error(f"--largest-of sets the size rule: name it in --searchers, got {args.searchers}.")
    if "size" in args.searchers:
        args.largest_of = SIZE_RULE_DRAWS if args.largest_of is None else args.largest_of
        if args.largest_of < 2:
            parser.error(f"--largest-of must be at least 2, got {args.largest_of}.")
    return args


def search(space, sampler, data, args):
    """`(derived values, score, seconds, final policy entropy or None, final choice's record or None)` of one search."""
    (x, y), validation = data
    keras.utils.set_random_seed(args.seed)  # both searches start from the same supernet weights
    tuner = keras_rlnas.ENASTuner(
        space,
        sampler=sampler,
        seed=args.seed,
        fine_tune_steps=args.fine_tune_steps,
        finalist_epochs=args.finalist_epochs,
        uniform_finalists=args.uniform_finalists,
        controller_options=args.controller_options if sampler == "controller" else None,
        omega_sampler=args.omega_sampler if sampler == "controller" else None,
        directory=tempfile.mkdtemp(prefix="enas_vs_random_"),
        project_name=sampler,
        verbose=0,
    )
    start = time.time()
    tuner.search(x, y, validation_data=validation, epochs=args.search_epochs)
    seconds = time.time() - start
    trial = tuner.oracle.get_best_trials(1)[0]
    history = tuner.learner.history
    entropy = float(history[-1]["entropy"]) if history and "entropy" in history[-1] else None
    final_choice = tuner.trained_finalists or tuner.fine_tuned
    if final_choice is not None:  # against the stage's cost estimate: about half an omega phase per child-epoch
        final_choice = {**final_choice, "last_omega_seconds": tuner.history[-1]["omega_seconds"]}
    return dict(trial.hyperparameters.values), float(trial.score), seconds, entropy, final_choice


def size_rule(space, args):
    """`(values, seconds)` of the size rule: the child with the most parameters of `--largest-of` drawn uniformly.

    Its draws are seeded apart from the random children's, by `--seed`.
    """
    start = time.time()
    seeds = np.random.default_rng([args.seed, args.largest_of]).integers(2**31, size=args.largest_of)
    return space.decode(largest_child(space, seeds)), time.time() - start


def main():
    args = parse_arguments()
    if args.pool:
        pool(args.pool, args.bootstrap)
        return
    if args.retrain_more:
        retrain_more(args.retrain_more, args.retrain_seeds, args.bootstrap, args.json, args.retrained_from)
        return
    began, load_at_start = time.time(), os.getloadavg()
    print(f"ENAS vs random children: {vars(args)}", flush=True)
    (x, y), (x_val, y_val), (x_test, y_test), info = keras_rlnas.datasets.load_arrays("fashion_mnist", limit=args.limit)
    validation = (x_val[: args.validation], y_val[: args.validation])
    test = (x_test[: args.test], y_test[: args.test])
    space = make_space(args, info)
    rng = np.random.default_rng(args.seed + 1)
    seeds = [args.seed + 1 + run for run in range(args.seeds)]

    rows = {}
    for sampler in args.searchers:
        label = SEARCHERS[sampler]
        if sampler == "size":
            (values, seconds), shared, entropy, final_choice = size_rule(space, args), None, None, None
            shown = f"the largest of {args.largest_of}"
        else:
            values, shared, seconds, entropy, final_choice = search(space, sampler, ((x, y), validation), args)
            shown = f"{'final choice' if final_choice else 'shared-weight'} score {shared:.4f}"
        scores = [test_accuracy(space, values, (x, y), test, args, seed) for seed in seeds]
        parameters = parameter_count(space, values)
        rows[label] = dict(values=values, shared=shared, search_seconds=seconds, entropy=entropy, test=scores,
                           final_choice=final_choice, parameters=parameters)
        print(
            f"{label}: searched {seconds:.0f} s, {shown}, {parameters:,} parameters"
            + (f", final entropy {entropy:.2f}" if entropy is not None else "")
            + f"; retrained test accuracy {', '.join(f'{s:.4f}' for s in scores)}",
            flush=True,
        )
    # Drawn whether or not their scores are reused, so both runs retrain the same children.
    random_encodings = [space.random_encoding(int(rng.integers(2**31))) for _ in range(args.random)]
    saved_encodings, saved_scores = saved_random(args) if args.random_from else (None, None)
    if saved_encodings is not None and saved_encodings != [e.tolist() for e in random_encodings]:
        raise SystemExit(f"--random-from: {args.random_from} drew other random children")
    random_scores = []
    for index, encoding in enumerate(random_encodings):
        if saved_scores is not None:
            random_scores.append(saved_scores[index])
        else:
            random_scores.append(test_accuracy(space, space.decode(encoding), (x, y), test, args, seeds[0]))
        print(f"random child {index}: test accuracy {random_scores[-1]:.4f}", flush=True)

    random_scores = np.array(random_scores)
    mean, sd = float(random_scores.mean()), float(random_scores.std(ddof=1))
    print(f"\n{'child':<32} {'test accuracy':>22}")
    for label, row in rows.items():
        scores = np.array(row["test"])
        print(f"{label:<32} {scores.mean():>12.4f} +- {scores.std(ddof=1) if len(scores) > 1 else 0.0:.4f} (n={len(scores)})")
    print(f"{'uniformly random children':<32} {mean:>12.4f} +- {sd:.4f} (n={len(random_scores)})")
    figures = margin_figures({label: row["test"] for label, row in rows.items()}, random_scores, rng, args.bootstrap)
    print(f"wall time {time.time() - began:.0f} s; load average {load_at_start[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                dict(arguments=vars(args), rows=rows, random=random_scores.tolist(),
                     random_encodings=[e.tolist() for e in random_encodings], figures=figures),
                file,
                indent=1,
                default=str,
            )


if __name__ == "__main__":
    main()
