"""ENAS ranking: do shared-weight scores order children as standalone training does?

Method
------
1. Supernet. An ENAS supernet is trained for a few epochs with uniformly
   sampled children (`ENASTuner(space, sampler="uniform")`: random search with
   weight sharing, so no controller bias towards some children; the usual
   setting of ranking studies).

2. Children that span the space. Uniform draws bunch around the middle of the
   space (about 4 of 6 conv ops and half the skips in the macro space), so
   their standalone scores hardly differ and no ranking can be read from them.
   Instead a large pool of random encodings is binned by two simple complexity
   features (macro: conv ops and skip connections; micro: separable-conv ops
   and identity ops), each cut into equal-width bins over its range, and the
   children are taken round-robin across the non-empty bins (random within a
   bin), so rare corners such as all-pooling or skip-free children are in.

3. Shared-weight scores, three per child, on the same validation images:
   - batch statistics: `supernet.evaluate(x_val, y_val, arch)`, every scoring
     batch normalised with its own statistics (as the search's rewards are);
   - BN recalibration: `supernet.evaluate(..., calibration_images=...)`, the
     moving statistics set from one forward pass over a fixed random set of
     training images, then the child scored in inference mode;
   - fine-tuned (`--fine-tune-steps`, 100 by default, 0 skips it):
     `keras_rlnas.supernet.fine_tuning.fine_tuned_accuracy`, the child
     trained alone for a few SGD steps from the shared weights (which are
     restored afterwards), then recalibrated and scored as above;
     `--fine-tune-repeats K` averages K such fine-tunings, each on its own
     minibatch draws, and shows each one's tau (the fine-tuning's own noise).

4. Standalone scores. Every child is trained from scratch twice, with two
   seeds (`keras.utils.set_random_seed` and the data order), by
   `keras_rlnas.retrain.retrain` (one cosine cycle; micro children without
   drop-path or auxiliary head), and scored on the same validation images.
   The agreement of the two runs, tau(seed 1, seed 2), is the noise ceiling:
   no proxy is expected to rank better than a second standalone training.

5. Statistics. Kendall tau-b of each shared score against the mean of the two
   standalone runs (the target figure) and against each run alone (the
   like-for-like comparison with the ceiling, which also pairs single runs),
   with 90 % percentile bootstrap intervals over children (children resampled
   with replacement) and one-sided permutation p-values; the fraction of the
   ceiling is bootstrapped on the same resamples. Spearman's rho is printed
   alongside. Shared weights favour convolution-rich children, so the same
   taus are also given beyond the conv count: on every score less the mean
   score of the children with its number of conv ops (`centred_within`).

6. Reward noise against spread. A search scores a child on one validation
   minibatch of n images. For each shared score the spread between children
   (sd of their full-validation scores) is set against the noise of such a
   reward (sd over minibatches of n images drawn with replacement from the
   validation images, pooled over children as a root mean square), and against
   the noise from the choice of calibration images (recalibrated score on the
   full validation images, several random calibration sets).

Commands
--------
    python benchmarks/enas_ranking.py                 # macro 6 layers x 16 filters, 24 children (< 60 min, 2 cores)
    python benchmarks/enas_ranking.py --quick         # a few minutes: smoke run
    python benchmarks/enas_ranking.py --space micro --children 20
    python benchmarks/enas_ranking.py --json /tmp/ranking.json   # also save every figure
    python benchmarks/enas_ranking.py --standalone-from /tmp/ranking.json   # new supernet, same standalone runs
    python benchmarks/enas_ranking.py --analyse /tmp/ranking.json   # the ranking beyond the conv count, no run
    python benchmarks/enas_ranking.py --standalone-from /tmp/ranking.json --supernet-seed 1 --json /tmp/s1.json
    python benchmarks/enas_ranking.py --ensemble /tmp/ranking.json /tmp/s1.json   # supernets averaged, no run

`--standalone-from` reuses the standalone scores of a saved run (the same
children and standalone settings are checked), so another supernet is
ranked in minutes instead of the hour of standalone training, and
`--supernet-seed` gives that supernet its own seed with the same children.
`--ensemble` reads several such runs: how far their supernets agree with
each other, whether averaging their scores ranks better than one supernet
(it would if each supernet's order were the standalone one plus noise), and
what each order goes with (tau-b with each of `traits`: op counts, 5 x 5
kernels, pools in the first third of the layers, skips).
"""

import argparse
import json
import os
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from ranking_analysis import PROXY_LABELS, analyse_saved, ensemble_saved  # noqa: E402
from ranking_children import (  # noqa: E402
    feature_names,
    features,
    make_space,
    stratified_children,
    summary,
)
from ranking_report import print_children, rank_agreement, reward_noise  # noqa: E402
from ranking_scores import score_on_shared_weights, train_standalone  # noqa: E402

import keras_rlnas  # noqa: E402
from keras_rlnas.supernet.fine_tuning import (  # noqa: E402
    FINE_TUNE_BATCH_SIZE,
    FINE_TUNE_LEARNING_RATE,
    FINE_TUNE_STEPS,
)

QUICK = dict(
    limit=2000,
    validation=500,
    supernet_epochs=2,
    children=6,
    standalone_epochs=1,
    noise_draws=3,
    pool=5000,
)


def argument_parser(description=None):
    """The parser of this benchmark's flags (`enas_few_shot.py` adds its own)."""
    parser = argparse.ArgumentParser(description=description or __doc__.split("\n")[0])
    parser.add_argument("--space", choices=("macro", "micro"), default="macro")
    parser.add_argument(
        "--layers", type=int, default=None, help="macro layers (6) / micro cells per stage (2)"
    )
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--limit", type=int, default=12000, help="training images")
    parser.add_argument(
        "--validation", type=int, default=2000, help="validation images (of the validation split)"
    )
    parser.add_argument(
        "--supernet-epochs", type=int, default=10, help="uniform ENAS epochs of the supernet"
    )
    parser.add_argument(
        "--children", type=int, default=24, help="children compared (>= 20 for a usable interval)"
    )
    parser.add_argument(
        "--pool", type=int, default=20000, help="random encodings binned to pick the children from"
    )
    parser.add_argument("--standalone-epochs", type=int, default=2)
    parser.add_argument(
        "--standalone-seeds", type=int, nargs=2, default=(1, 2), metavar=("SEED1", "SEED2")
    )
    parser.add_argument(
        "--calibration", type=int, default=512, help="training images for BN recalibration"
    )
    parser.add_argument(
        "--calibration-draws",
        type=int,
        default=2,
        help="extra calibration sets per child, for its noise",
    )
    parser.add_argument(
        "--noise-sizes",
        type=int,
        nargs="+",
        default=(128, 256, 512, 1024),
        help="reward minibatch sizes",
    )
    parser.add_argument(
        "--noise-draws", type=int, default=5, help="batch-stats minibatches per child and size"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=2000, help="bootstrap resamples of the children"
    )
    parser.add_argument("--permutations", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=128, help="standalone training minibatch")
    parser.add_argument(
        "--supernet-batch", type=int, default=32, help="omega-phase minibatch (the tuner's default)"
    )
    parser.add_argument(
        "--restart-period", type=int, default=10,
        help="epochs of the supernet's first cosine cycle (the tuner's 10: 20 epochs then end mid-cycle)",
    )
    parser.add_argument(
        "--sampler", choices=("uniform", "fair"), default="uniform",
        help="the supernet's omega phase: a uniform child per minibatch, or FairNAS's strict fairness "
             "(children covering every op, gradients summed; ENASTuner(sampler='fair'))",
    )
    parser.add_argument(
        "--separate-op-weights",
        action="store_true",
        help="macro: every op its own weights (the reference supernet), not entangled ones",
    )
    parser.add_argument(
        "--fine-tune-steps",
        type=int,
        default=FINE_TUNE_STEPS,
        help="third score: the child trained alone for this many steps from the shared weights (0: skip)",
    )
    parser.add_argument("--fine-tune-batch", type=int, default=FINE_TUNE_BATCH_SIZE)
    parser.add_argument(
        "--fine-tune-repeats", type=int, default=1,
        help="independent fine-tunings per child (own minibatch draws); the score is their mean, each repeat's tau is shown",
    )
    parser.add_argument("--fine-tune-learning-rate", type=float, default=FINE_TUNE_LEARNING_RATE)
    parser.add_argument(
        "--standalone-from",
        default=None,
        help="a --json file of an earlier run: reuse its standalone scores for the same children",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--supernet-seed", type=int, default=None,
        help="seed of the supernet's weights and omega draws (default: --seed); the children stay those of --seed",
    )
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    parser.add_argument(
        "--ensemble", metavar="JSON", nargs="+", default=None,
        help="no run: the ranking of the children's recalibrated scores averaged over saved --json runs",
    )
    parser.add_argument(
        "--analyse", metavar="JSON", default=None,
        help="no run: print the ranking beyond the conv count of a saved --json run",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()),
    )
    return parser


def parse_arguments(parser=None):
    parser = parser or argument_parser()
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.layers is None:
        args.layers = 6 if args.space == "macro" else 2
    if args.children < 3:
        parser.error("--children must be at least 3 for a rank correlation.")
    return args


def source_state():
    """The commit and the uncommitted files under keras_rlnas/ the figures come from."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "keras_rlnas"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
        changed = [line[3:] for line in changed if line.strip()]
    except OSError:
        return "unknown (no git)"
    return f"HEAD {head}" + (
        f" + uncommitted changes in {len(changed)} files: {', '.join(changed)}" if changed else ""
    )


def supernet_options(args):
    """The tuner's `supernet_options` for the flags of this run."""
    options = {"restart_period": args.restart_period}
    if args.separate_op_weights:
        options["entangled"] = False
    return options


def train_supernet(args, space, x, y, x_val, y_val):
    """`(tuner, seconds)`: the supernet trained by `args.supernet_epochs` ENAS epochs of `args.sampler`."""
    supernet_seed = args.seed if args.supernet_seed is None else args.supernet_seed
    keras.utils.set_random_seed(supernet_seed)  # the supernet's initial weights
    # Few derivation samples: the benchmark scores its own children, not the derived one.
    tuner = keras_rlnas.ENASTuner(
        space,
        sampler=args.sampler,
        seed=supernet_seed,
        batch_size=args.supernet_batch,
        supernet_options=supernet_options(args),
        derive_samples=10,
        directory=tempfile.mkdtemp(prefix="enas_ranking_"),
        project_name="ranking",
        verbose=0,
    )
    progress = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: print(
            f"  supernet epoch {epoch + 1}/{args.supernet_epochs}: {logs['seconds']:.0f} s, training accuracy "
            f"{logs['train_accuracy']:.3f}, loss {logs['train_loss']:.3f}",
            flush=True,
        )
    )
    start = time.time()
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=args.supernet_epochs, callbacks=[progress])
    seconds = time.time() - start
    print(
        f"\nsupernet: {args.supernet_epochs} {args.sampler} ENAS epochs on {len(x)} images in {seconds:.0f} s; "
        f"training accuracy by epoch {[round(h['train_accuracy'], 3) for h in tuner.history]}",
        flush=True,
    )
    return tuner, seconds


def print_summary(args, tuner, proxies, standalone, results, seconds, images):
    """The run's headline figures: accuracies, the ceiling, each proxy's tau and the time spent."""
    mean_standalone = standalone.mean(axis=1)
    batch_stats, recalibrated = proxies["batch_stats"], proxies["recalibrated"]
    print("\nsummary")
    print(
        f"  {args.space} {args.layers} x {args.filters}, {images[0]} training / {images[1]} validation images; supernet "
        f"{args.supernet_epochs} {args.sampler} epochs (final training accuracy {tuner.history[-1]['train_accuracy']:.3f}); "
        f"{len(standalone)} children, standalone {args.standalone_epochs} epochs x seeds {tuple(args.standalone_seeds)}"
    )
    print(
        f"  shared accuracy: batch-stats {batch_stats.mean():.3f} +- {batch_stats.std(ddof=1):.3f}, recalibrated "
        f"{recalibrated.mean():.3f} +- {recalibrated.std(ddof=1):.3f}; standalone {mean_standalone.mean():.3f} +- "
        f"{mean_standalone.std(ddof=1):.3f}"
    )
    c = results["ceiling"]
    print(
        f"  {'noise ceiling tau(seed 1, seed 2)':<43} {c['tau']:+.3f} [{c['interval'][0]:+.3f}, {c['interval'][1]:+.3f}] "
        f"p = {c['p']:.4f}"
    )
    for key in proxies:
        label, m = PROXY_LABELS[key], results[key]["mean"]
        print(
            f"  {'tau(' + label + ', mean standalone)':<43} {m['tau']:+.3f} [{m['interval'][0]:+.3f}, {m['interval'][1]:+.3f}] "
            f"p = {m['p']:.4f}; {m['fraction']:.0%} of ceiling [{m['fraction_interval'][0]:.0%}, {m['fraction_interval'][1]:.0%}]"
        )
    print(
        f"  time: supernet {seconds['supernet']:.0f} s, shared scoring {seconds['shared']:.0f} s, standalone "
        f"{seconds['standalone']:.0f} s; total wall time {seconds['total']:.0f} s ({seconds['total'] / 60:.1f} min)"
    )


def main():
    args = parse_arguments()
    if args.analyse:
        analyse_saved(args.analyse, args.bootstrap, args.seed)
        return
    if args.ensemble:
        ensemble_saved(args.ensemble, args.bootstrap, args.seed)
        return
    began = time.time()
    print(f"{args.sampler}-supernet ranking benchmark: {vars(args)}")
    print(f"code: {source_state()}", flush=True)
    (x, y), (x_val, y_val), _, info = keras_rlnas.datasets.load_arrays("fashion_mnist", limit=args.limit)
    x_val, y_val = x_val[: args.validation], y_val[: args.validation]
    space = make_space(args.space, args.layers, args.filters, info.input_shape, info.num_classes)
    rng = np.random.default_rng(args.seed + 1)
    seconds = {}

    tuner, seconds["supernet"] = train_supernet(args, space, x, y, x_val, y_val)

    encodings, bins = stratified_children(space, args.children, args.pool, rng)
    names = feature_names(space)
    counts = np.array([features(space, encoding) for encoding in encodings])
    print(
        f"\n{len(encodings)} children from {bins} non-empty bins of ({names[0]}, {names[1]}) over {args.pool} random "
        f"encodings: {names[0]} {counts[:, 0].min()}..{counts[:, 0].max()}, {names[1]} {counts[:, 1].min()}..{counts[:, 1].max()}"
    )

    start = time.time()
    shared, proxies, repeat_scores, calibration_size = score_on_shared_weights(
        args, tuner.supernet, encodings, x, y, x_val, y_val, rng
    )
    seconds["shared"] = time.time() - start
    print(f"shared-weight scoring and noise draws: {seconds['shared']:.0f} s", flush=True)

    start = time.time()
    standalone, params = train_standalone(args, space, encodings, x, y, x_val, y_val)
    seconds["standalone"] = time.time() - start

    print_children(space, encodings, names, counts, params, proxies, standalone, args.standalone_seeds)
    results = rank_agreement(
        proxies, standalone, counts[:, 0], repeat_scores, rng, args.bootstrap, args.permutations
    )
    spread, noise, calibration_noise = reward_noise(
        shared, args.noise_sizes, args.noise_draws, calibration_size, args.calibration_draws
    )
    seconds["total"] = time.time() - began
    print_summary(args, tuner, proxies, standalone, results, seconds, (len(x), len(x_val)))

    if args.json:
        record = {
            "arguments": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
            "code": source_state(),
            "supernet_history": tuner.history,
            "children": [
                {
                    "encoding": encoding.tolist(),
                    "summary": summary(space, encoding),
                    names[0]: int(counts[i, 0]),
                    names[1]: int(counts[i, 1]),
                    "params": params[i],
                    **{key: float(proxy[i]) for key, proxy in proxies.items()},
                    **({"fine_tuned_repeats": repeat_scores[:, i].tolist()} if repeat_scores is not None else {}),
                    "calibration_scores": shared[i]["calibration_scores"],
                    "standalone": standalone[i].tolist(),
                }
                for i, encoding in enumerate(encodings)
            ],
            "taus": results,
            "spread": spread,
            "reward_noise": {key: {str(n): v for n, v in values.items()} for key, values in noise.items()},
            "calibration_noise": calibration_noise,
            "seconds": seconds,
        }
        with open(args.json, "w") as file:
            json.dump(record, file, indent=1, default=float)
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
