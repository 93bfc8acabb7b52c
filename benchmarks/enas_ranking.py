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
import gc
import itertools
import json
import os
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_rlnas  # noqa: E402
from keras_rlnas.retrain import retrain  # noqa: E402
from keras_rlnas.supernet.few_shot import op_names  # noqa: E402
from keras_rlnas.supernet.fine_tuning import (  # noqa: E402
    FINE_TUNE_BATCH_SIZE,
    FINE_TUNE_LEARNING_RATE,
    FINE_TUNE_STEPS,
    fine_tuned_accuracy,
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
#: Batch-stats rewards are drawn `--noise-draws` times; recalibrated ones reuse per-image flags, so many draws are free.
RECALIBRATED_DRAWS = 200


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


# ----------------------------------------------------------------- statistics
def kendall_tau_b(a, b):
    """Kendall's tau-b of two score vectors (ties counted as in scipy.stats.kendalltau)."""
    return float(_kendall_tau_b_rows(np.asarray(a, float)[None], np.asarray(b, float)[None])[0])


def _kendall_tau_b_rows(a, b):
    """Kendall's tau-b of each row pair of two `(rows, n)` arrays (NaN where a row is constant)."""
    upper_i, upper_j = np.triu_indices(a.shape[1], 1)
    da = np.sign(a[:, upper_i] - a[:, upper_j])
    db = np.sign(b[:, upper_i] - b[:, upper_j])
    denominator = np.sqrt(np.count_nonzero(da, axis=1).astype(float) * np.count_nonzero(db, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, np.sum(da * db, axis=1) / denominator, np.nan)


def spearman_rho(a, b):
    """Spearman's rho (Pearson correlation of average ranks)."""

    def ranks(values):
        values = np.asarray(values, float)
        order = values.argsort()
        rank = np.empty(len(values))
        rank[order] = np.arange(len(values))
        for value in np.unique(values):
            rank[values == value] = rank[values == value].mean()
        return rank

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def permutation_p_value(a, b, statistic, rng, permutations=10000):
    """One-sided p-value of `statistic(a, b)` being this large when the pairing is random.

    `statistic` is a function of two vectors; `kendall_tau_b` is computed for
    all permutations at once.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    observed = statistic(a, b)
    shuffled = np.stack([rng.permutation(b) for _ in range(permutations)])
    if statistic is kendall_tau_b:
        draws = _kendall_tau_b_rows(np.broadcast_to(a, shuffled.shape), shuffled)
    else:
        draws = np.array([statistic(a, row) for row in shuffled])
    return float((1 + np.sum(draws >= observed - 1e-12)) / (permutations + 1))


def bootstrap_indices(count, resamples, rng):
    """`(resamples, count)` child indices drawn with replacement."""
    return rng.integers(0, count, size=(resamples, count))


def bootstrap_taus(a, b, indices):
    """tau-b of `a` and `b` on every resample of children in `indices`."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return _kendall_tau_b_rows(a[indices], b[indices])


def interval(draws, level=0.90):
    """The percentile interval of bootstrap draws (NaN draws, from constant resamples, left out)."""
    draws = np.asarray(draws, float)
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return float("nan"), float("nan")
    low, high = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def centred_within(scores, groups):
    """`scores` less the mean score of their group: what a proxy says beyond the group.

    With `groups` a child's conv count, a proxy that only counts convolutions
    ranks the centred scores no better than chance.
    """
    scores, groups = np.asarray(scores, float), np.asarray(groups)
    centred = scores.copy()
    for group in np.unique(groups):
        centred[groups == group] -= scores[groups == group].mean()
    return centred


def beyond_feature(feature_name, groups, proxies, standalone, indices):
    """Prints and returns tau-b of centred scores: the ranking beyond one feature of the children.

    Args:
        feature_name: the feature's name, for the printout.
        groups: the feature's value per child.
        proxies: `{key: shared-weight scores}`.
        standalone: `(children, 2)` standalone scores of two seeds.
        indices: bootstrap resamples of the children.

    Returns:
        `{"ceiling": figures, key: figures}`, each `{"tau", "interval"}`;
        the ceiling compares the two standalone seeds, the proxies the mean.
    """
    standalone = np.asarray(standalone, float)
    reference = centred_within(standalone.mean(axis=1), groups)
    pairs = {"ceiling": (centred_within(standalone[:, 0], groups), centred_within(standalone[:, 1], groups))}
    pairs.update({key: (centred_within(proxy, groups), reference) for key, proxy in proxies.items()})
    print(f"\nbeyond the {feature_name}: tau-b of scores less their {feature_name} group's mean (90% bootstrap)")
    figures = {}
    for key, (a, b) in pairs.items():
        tau, (low, high) = kendall_tau_b(a, b), interval(bootstrap_taus(a, b, indices))
        figures[key] = {"tau": tau, "interval": [low, high]}
        label = "noise ceiling: standalone seed 1 vs seed 2" if key == "ceiling" else (
            f"shared {PROXY_LABELS[key]} vs mean standalone")
        print(f"  {label:<44} tau-b {tau:+.3f}  [{low:+.3f}, {high:+.3f}]")
    return figures


def analyse_saved(path, bootstrap=2000, seed=0):
    """`--analyse FILE`: the ranking beyond the conv count, from a saved `--json` run."""
    with open(path) as file:
        children = json.load(file)["children"]
    indices = bootstrap_indices(len(children), bootstrap, np.random.default_rng(seed))
    proxies = {key: [child[key] for child in children] for key in PROXY_LABELS if key in children[0]}
    standalone = [child["standalone"] for child in children]
    return beyond_feature("conv count", [child["convs"] for child in children], proxies, standalone, indices)


def make_space(kind, layers, filters, input_shape=(28, 28, 1), num_classes=10):
    """The benchmark's space (`--space`, `--layers`, `--filters`); Fashion-MNIST's shape by default."""
    if kind == "macro":
        return keras_rlnas.ENASMacro(input_shape, num_classes, num_layers=layers, filters=filters)
    return keras_rlnas.ENASMicro(input_shape, num_classes, num_cells=layers, filters=filters)


def trait_taus(space, encodings, orders):
    """Prints tau-b of each order (`{label: scores}`) with each of the children's `traits`."""
    rows = [traits(space, encoding) for encoding in encodings]
    print("\n  tau-b with each trait   " + "".join(f"{label:>12}" for label in orders))
    for trait in rows[0]:
        values = [row[trait] for row in rows]
        print(f"    {trait:<20}" + "".join(f"{kendall_tau_b(order, values):>+12.2f}" for order in orders.values()))


def ensemble_saved(paths, bootstrap=2000, seed=0):
    """`--ensemble FILE...`: the ranking of shared scores averaged over several saved supernets.

    Each run's recalibrated scores are standardised (supernets differ in their
    mean and spread) and averaged per child. If the supernets' orders were a
    true order plus independent noise, the average would rank better than a
    single supernet; if they share one bias, it would not.
    """
    saved = []
    for path in paths:
        with open(path) as file:
            saved.append(json.load(file))
    runs = [run["children"] for run in saved]
    encodings = [child["encoding"] for child in runs[0]]
    for path, children in zip(paths, runs):
        if [child["encoding"] for child in children] != encodings:
            raise SystemExit(f"--ensemble: {path} scored other children than {paths[0]}.")
    standalone = np.array([np.mean(child["standalone"]) for child in runs[0]])
    scores = np.array([[child["recalibrated"] for child in children] for children in runs])
    standardised = (scores - scores.mean(axis=1, keepdims=True)) / scores.std(axis=1, keepdims=True)
    print(f"recalibrated shared scores of {len(runs[0])} children on {len(paths)} supernets, tau-b against mean standalone")
    for path, row in zip(paths, scores):
        print(f"  {os.path.basename(path):<56} {kendall_tau_b(row, standalone):+.3f}")
    agreement = [kendall_tau_b(scores[i], scores[j]) for i, j in itertools.combinations(range(len(paths)), 2)]
    print(f"  supernets with each other: tau-b {np.mean(agreement):+.3f} on average ({min(agreement):+.3f}..{max(agreement):+.3f})")
    for size in range(2, len(paths) + 1):
        taus = [kendall_tau_b(standardised[list(subset)].mean(axis=0), standalone)
                for subset in itertools.combinations(range(len(paths)), size)]
        print(f"  averages of {size} supernets: tau-b {np.mean(taus):+.3f} (over {len(taus)} subsets, {min(taus):+.3f}..{max(taus):+.3f})")
    average = standardised.mean(axis=0)
    indices = bootstrap_indices(len(standalone), bootstrap, np.random.default_rng(seed))
    low, high = interval(bootstrap_taus(average, standalone, indices))
    print(f"  the average of all {len(paths)}: tau-b {kendall_tau_b(average, standalone):+.3f}  90% CI [{low:+.3f}, {high:+.3f}]")
    arguments = saved[0]["arguments"]
    space = make_space(arguments["space"], arguments["layers"], arguments["filters"])
    trait_taus(space, [np.asarray(encoding) for encoding in encodings], {"shared": average, "standalone": standalone})
    proxies = {"recalibrated": average}
    return beyond_feature("conv count", [child["convs"] for child in runs[0]], proxies,
                          [child["standalone"] for child in runs[0]], indices)


# ----------------------------------------------------------- children chosen
def traits(space, encoding):
    """`{trait: count}`: what a child is made of.

    Each op's count; for macro children also their 5 x 5 kernels, pools in
    the first third of the layers and skips (micro cells need nothing more:
    identity is one of their ops).
    """
    names = op_names(space, encoding)
    counts = {name: names.count(name) for name in space.OPS}
    if isinstance(space, keras_rlnas.ENASMacro):
        counts["5x5 kernels"] = sum("5x5" in name for name in names)
        counts["early pools"] = sum("pool" in name for name in names[: max(1, len(names) // 3)])
        counts["skips"] = features(space, encoding)[1]
    return counts


def features(space, encoding):
    """Two complexity features of a child: (conv ops, skip connections).

    Macro: convolutions among the layer ops (the rest are pools) and skip bits
    set. Micro: separable convolutions among the node ops and identity ops.
    """
    names = op_names(space, encoding)
    if isinstance(space, keras_rlnas.ENASMacro):
        _, skips = space.parse(encoding)
        return sum("conv" in op for op in names), sum(len(sources) for sources in skips)
    return sum("conv" in op for op in names), sum(op == "identity" for op in names)


def feature_names(space):
    return ("convs", "skips") if isinstance(space, keras_rlnas.ENASMacro) else ("convs", "ids")


def summary(space, encoding):
    """A short description of a child's ops.

    Macro: the layer ops in order, e.g. `c3 s5 mp c5 ap s3`; micro: op counts
    per cell, e.g. `N:5id,2s3,1s5,2mp R:...`.
    """
    short = {
        "conv3x3": "c3",
        "conv5x5": "c5",
        "sepconv3x3": "s3",
        "sepconv5x5": "s5",
        "avgpool3x3": "ap",
        "maxpool3x3": "mp",
        "identity": "id",
    }
    if isinstance(space, keras_rlnas.ENASMacro):
        op_indices, _ = space.parse(encoding)
        return " ".join(short[space.OPS[op]] for op in op_indices)
    parts = []
    for group, nodes in space.parse(encoding).items():
        ops = [space.OPS[op] for pairs in nodes for _, op in pairs]
        counts = {name: ops.count(name) for name in space.OPS if ops.count(name)}
        parts.append(
            group[0].upper()
            + ":"
            + ",".join(f"{count}{short[name]}" for name, count in counts.items())
        )
    return " ".join(parts)


def stratified_children(space, count, pool_size, rng):
    """`count` distinct encodings spread over the bins of two complexity features.

    Draws `pool_size` random encodings, cuts each feature's observed range
    into equal-width bins (4 x 6 bins for 16 or more children, 2 x 3 below),
    then takes one child per non-empty bin in a random bin order, round after
    round, until `count` are taken.

    Returns:
        `(encodings, bins)`: the chosen encodings and how many bins were non-empty.
    """
    pool = {}
    for _ in range(pool_size):
        encoding = space.random_encoding(int(rng.integers(2**31)))
        pool.setdefault(encoding.tobytes(), encoding)
    encodings = list(pool.values())
    values = np.array([features(space, encoding) for encoding in encodings])
    bins_per_feature = (6, 4) if count >= 16 else (3, 2)
    cells = np.zeros(len(encodings), int)
    for column, bins in enumerate(bins_per_feature):
        low, high = values[:, column].min(), values[:, column].max() + 1
        index = np.minimum(((values[:, column] - low) * bins) // max(high - low, 1), bins - 1)
        cells = cells * bins + index
    members = {
        cell: list(rng.permutation(np.flatnonzero(cells == cell))) for cell in np.unique(cells)
    }
    chosen = []
    while len(chosen) < count and any(members.values()):
        for cell in rng.permutation(list(members)):
            if members[cell] and len(chosen) < count:
                chosen.append(encodings[members[cell].pop()])
    return chosen, len(members)


# ------------------------------------------------------------------- scoring
def correct_flags(supernet, arch, images, labels, batch_size=256):
    """Per-image correctness of child `arch` in inference mode (the current moving statistics)."""
    flags = []
    for start in range(0, len(images), batch_size):
        probabilities = np.asarray(supernet.predict(images[start : start + batch_size], arch))
        flags.append(probabilities.argmax(axis=-1) == labels[start : start + batch_size])
    return np.concatenate(flags)


def shared_scores(supernet, arch, x_val, y_val, calibration, x, args, rng):
    """Both shared-weight scores of a child and the samples of their noise.

    Returns a dict: `batch_stats`, `recalibrated` (full-validation accuracies),
    `batch_noise[n]` and `recal_noise[n]` (accuracies on random minibatches of
    n validation images), `calibration_scores` (recalibrated accuracies with
    other random calibration sets) and `mismatch` (recalibrated `evaluate`
    against the per-image count of `predict`, which should agree).
    """
    result = {"batch_stats": supernet.evaluate(x_val, y_val, arch)}
    result["recalibrated"] = supernet.evaluate(x_val, y_val, arch, calibration_images=calibration)
    flags = correct_flags(supernet, arch, x_val, y_val)
    result["mismatch"] = abs(float(flags.mean()) - result["recalibrated"])
    result["batch_noise"], result["recal_noise"] = {}, {}
    for n in args.noise_sizes:
        draws = [rng.integers(0, len(x_val), n) for _ in range(args.noise_draws)]
        result["batch_noise"][n] = [
            float(supernet.eval_step(x_val[index], y_val[index], arch)) for index in draws
        ]
        # The recalibrated reward is a mean of fixed per-image flags: many draws cost nothing.
        result["recal_noise"][n] = [
            float(flags[rng.integers(0, len(flags), n)].mean()) for _ in range(RECALIBRATED_DRAWS)
        ]
    result["calibration_scores"] = [
        supernet.evaluate(
            x_val,
            y_val,
            arch,
            calibration_images=x[rng.choice(len(x), len(calibration), replace=False)],
        )
        for _ in range(args.calibration_draws)
    ]
    return result


def standalone_score(space, encoding, x, y, x_val, y_val, epochs, batch, seed):
    """`(validation accuracy, parameters)` of the child trained from scratch with `seed`."""
    keras.utils.set_random_seed(seed)
    # Short standalone training is plain: no final-training drop-path or auxiliary head.
    plain = (
        {"drop_path": 0.0, "auxiliary_weight": 0.0}
        if isinstance(space, keras_rlnas.ENASMicro)
        else {}
    )
    model = retrain(
        space, space.decode(encoding), x, y, epochs=epochs, batch_size=batch, seed=seed, **plain
    )
    accuracy = float(model.evaluate(x_val, y_val, batch_size=256, verbose=0)[1])
    params = int(model.count_params())
    del model
    keras.backend.clear_session()
    gc.collect()
    return accuracy, params


STANDALONE_SETTINGS = ("space", "layers", "filters", "limit", "validation", "standalone_epochs", "standalone_seeds", "batch")


def saved_standalone(args, encodings):
    """`[(scores, params)]` per child from `--standalone-from`, or `None` without it.

    Raises `ValueError` when the saved run trained other children or trained
    them otherwise.
    """
    if not args.standalone_from:
        return None
    with open(args.standalone_from) as file:
        saved = json.load(file)
    for key in STANDALONE_SETTINGS:
        mine, theirs = vars(args)[key], saved["arguments"][key]
        if (list(mine) if isinstance(mine, (list, tuple)) else mine) != theirs:
            raise ValueError(f"--standalone-from ran with {key}={theirs!r}, this run has {mine!r}.")
    children = saved["children"]
    if [child["encoding"] for child in children] != [encoding.tolist() for encoding in encodings]:
        raise ValueError("--standalone-from scored other children (its --seed, --pool or --children differ).")
    print(f"standalone scores reused from {args.standalone_from} ({saved['code']})", flush=True)
    return [(np.array(child["standalone"]), child["params"]) for child in children]


# ----------------------------------------------------------------- reporting
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


def tau_block(name, proxy, reference, indices, rng, args, ceiling=None):
    """Prints tau-b, interval, p-value and rho of `proxy` against `reference`; returns the figures.

    `ceiling`: `(tau, bootstrap draws on the same resamples)` of the noise
    ceiling, to report the fraction of it too.
    """
    tau = kendall_tau_b(proxy, reference)
    draws = bootstrap_taus(proxy, reference, indices)
    low, high = interval(draws)
    p = permutation_p_value(proxy, reference, kendall_tau_b, rng, args.permutations)
    rho = spearman_rho(proxy, reference)
    figures = {"tau": tau, "interval": [low, high], "p": p, "rho": rho}
    line = f"  {name:<40} tau-b {tau:+.3f}  90% CI [{low:+.3f}, {high:+.3f}]  p = {p:.4f}  rho {rho:+.3f}"
    if ceiling is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            fractions = draws / ceiling[1]
        fraction = tau / ceiling[0]
        flow, fhigh = interval(fractions)
        figures.update(fraction=fraction, fraction_interval=[flow, fhigh])
        line += f"  = {fraction:.0%} of ceiling [{flow:.0%}, {fhigh:.0%}]"
    print(line)
    return figures


PROXY_LABELS = {"batch_stats": "batch-stats", "recalibrated": "recalibrated", "fine_tuned": "fine-tuned"}


def child_batches(x, y, batch_size, seed):
    """Endless random training minibatches for one child's fine-tuning."""
    rng = np.random.default_rng(seed)
    while True:
        index = rng.integers(0, len(x), batch_size)
        yield x[index], y[index]


def supernet_options(args):
    """The tuner's `supernet_options` for the flags of this run."""
    options = {"restart_period": args.restart_period}
    if args.separate_op_weights:
        options["entangled"] = False
    return options


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
    (x, y), (x_val, y_val), _, info = keras_rlnas.datasets.load_arrays(
        "fashion_mnist", limit=args.limit
    )
    x_val, y_val = x_val[: args.validation], y_val[: args.validation]
    space = make_space(args.space, args.layers, args.filters, info.input_shape, info.num_classes)
    rng = np.random.default_rng(args.seed + 1)

    # 1. The supernet.
    supernet_seed = args.seed if args.supernet_seed is None else args.supernet_seed
    keras.utils.set_random_seed(supernet_seed)  # the supernet's initial weights
    directory = tempfile.mkdtemp(prefix="enas_ranking_")
    # Few derivation samples: the benchmark scores its own children, not the derived one.
    tuner = keras_rlnas.ENASTuner(
        space,
        sampler=args.sampler,
        seed=supernet_seed,
        batch_size=args.supernet_batch,
        supernet_options=supernet_options(args),
        derive_samples=10,
        directory=directory,
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
    tuner.search(
        x, y, validation_data=(x_val, y_val), epochs=args.supernet_epochs, callbacks=[progress]
    )
    supernet = tuner.supernet
    supernet_seconds = time.time() - start
    print(
        f"\nsupernet: {args.supernet_epochs} {args.sampler} ENAS epochs on {len(x)} images in {supernet_seconds:.0f} s; "
        f"training accuracy by epoch {[round(h['train_accuracy'], 3) for h in tuner.history]}",
        flush=True,
    )

    # 2. The children.
    encodings, bins = stratified_children(space, args.children, args.pool, rng)
    names = feature_names(space)
    counts = np.array([features(space, encoding) for encoding in encodings])
    print(
        f"\n{len(encodings)} children from {bins} non-empty bins of ({names[0]}, {names[1]}) over {args.pool} random "
        f"encodings: {names[0]} {counts[:, 0].min()}..{counts[:, 0].max()}, {names[1]} {counts[:, 1].min()}..{counts[:, 1].max()}"
    )

    # 3. Shared-weight scores.
    start = time.time()
    calibration = x[rng.choice(len(x), min(args.calibration, len(x)), replace=False)]
    shared = []
    for index, encoding in enumerate(encodings):
        shared.append(shared_scores(supernet, encoding, x_val, y_val, calibration, x, args, rng))
        print(
            f"  shared {index:>2}: batch-stats {shared[-1]['batch_stats']:.4f}  recalibrated {shared[-1]['recalibrated']:.4f}",
            flush=True,
        )
    shared_seconds = time.time() - start
    batch_stats = np.array([s["batch_stats"] for s in shared])
    recalibrated = np.array([s["recalibrated"] for s in shared])
    proxies = {"batch_stats": batch_stats, "recalibrated": recalibrated}
    repeat_scores = None
    if args.fine_tune_steps:
        start = time.time()
        repeat_scores = np.array([
            [
                fine_tuned_accuracy(
                    supernet, encoding,
                    child_batches(x, y, args.fine_tune_batch, args.seed * 1000 + index + 100000 * repeat),
                    x_val, y_val, steps=args.fine_tune_steps, learning_rate=args.fine_tune_learning_rate,
                    calibration_images=calibration,
                )
                for index, encoding in enumerate(encodings)
            ]
            for repeat in range(args.fine_tune_repeats)
        ])
        proxies["fine_tuned"] = repeat_scores.mean(axis=0)
        print(
            f"fine-tuned scores ({args.fine_tune_repeats} x {args.fine_tune_steps} steps of {args.fine_tune_batch} "
            f"images at learning rate {args.fine_tune_learning_rate}, recalibrated): {time.time() - start:.0f} s",
            flush=True,
        )
    mismatch = max(s["mismatch"] for s in shared)
    print(f"shared-weight scoring and noise draws: {shared_seconds:.0f} s", flush=True)

    # 4. Standalone training.
    start = time.time()
    standalone, params = np.zeros((len(encodings), 2)), []
    saved = saved_standalone(args, encodings)
    for index, encoding in enumerate(encodings):
        if saved is not None:
            standalone[index], child_params = saved[index]
            params.append(child_params)
            continue
        child_start = time.time()
        for run, seed in enumerate(args.standalone_seeds):
            standalone[index, run], child_params = standalone_score(
                space, encoding, x, y, x_val, y_val, args.standalone_epochs, args.batch, seed
            )
        params.append(child_params)
        print(
            f"  standalone {index:>2}: {standalone[index, 0]:.4f} {standalone[index, 1]:.4f}  "
            f"({time.time() - child_start:.0f} s)",
            flush=True,
        )
    standalone_seconds = time.time() - start
    mean_standalone = standalone.mean(axis=1)

    # Per-child table (NaN where fine-tuned scores were skipped).
    tuned = proxies.get("fine_tuned", np.full(len(encodings), np.nan))
    print(
        f"\n{'child':>5} {names[0]:>5} {names[1]:>5}  {'ops':<22} {'params':>8} {'shared':>8} {'shared':>8} "
        f"{'shared':>8} {'alone':>7} {'alone':>7}"
    )
    print(
        f"{'':>5} {'':>5} {'':>5}  {'':<22} {'':>8} {'batch':>8} {'recal':>8} {'tuned':>8} "
        f"{'seed' + str(args.standalone_seeds[0]):>7} {'seed' + str(args.standalone_seeds[1]):>7}"
    )
    for index, encoding in enumerate(encodings):
        print(
            f"{index:>5} {counts[index, 0]:>5} {counts[index, 1]:>5}  {summary(space, encoding):<22} {params[index]:>8,} "
            f"{batch_stats[index]:>8.4f} {recalibrated[index]:>8.4f} {tuned[index]:>8.4f} "
            f"{standalone[index, 0]:>7.4f} {standalone[index, 1]:>7.4f}"
        )
    for label, column in (("mean", np.mean), ("sd", lambda v: np.std(v, ddof=1))):
        print(
            f"{label:>5} {'':>5} {'':>5}  {'':<22} {'':>8} {column(batch_stats):>8.4f} {column(recalibrated):>8.4f} "
            f"{column(tuned):>8.4f} "
            f"{column(standalone[:, 0]):>7.4f} {column(standalone[:, 1]):>7.4f}"
        )

    # 5. Rank agreement.
    indices = bootstrap_indices(len(encodings), args.bootstrap, rng)
    print(
        f"\nKendall tau-b over {len(encodings)} children (90% bootstrap intervals over children, {args.bootstrap} "
        f"resamples; one-sided permutation p, {args.permutations} permutations)"
    )
    ceiling_draws = bootstrap_taus(standalone[:, 0], standalone[:, 1], indices)
    ceiling = tau_block(
        "noise ceiling: standalone seed 1 vs seed 2",
        standalone[:, 0],
        standalone[:, 1],
        indices,
        rng,
        args,
    )
    results = {"ceiling": ceiling}
    for key, proxy in proxies.items():
        label = "shared " + PROXY_LABELS[key]
        results[key] = {
            "mean": tau_block(
                f"{label} vs mean standalone",
                proxy,
                mean_standalone,
                indices,
                rng,
                args,
                (ceiling["tau"], ceiling_draws),
            ),
            "seed1": tau_block(f"{label} vs seed 1", proxy, standalone[:, 0], indices, rng, args),
            "seed2": tau_block(f"{label} vs seed 2", proxy, standalone[:, 1], indices, rng, args),
        }
        single = (results[key]["seed1"]["tau"] + results[key]["seed2"]["tau"]) / 2
        single_draws = (
            bootstrap_taus(proxy, standalone[:, 0], indices)
            + bootstrap_taus(proxy, standalone[:, 1], indices)
        ) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            low, high = interval(single_draws / ceiling_draws)
        results[key]["single_run_fraction"] = {
            "value": single / ceiling["tau"],
            "interval": [low, high],
        }
        print(
            f"  {label}: mean tau vs single runs {single:+.3f} = {single / ceiling['tau']:.0%} of ceiling "
            f"[{low:.0%}, {high:.0%}] (like for like)"
        )
    if repeat_scores is not None and len(repeat_scores) > 1:
        repeat_taus = [kendall_tau_b(scores, mean_standalone) for scores in repeat_scores]
        results["fine_tuned_repeats"] = repeat_taus
        print(
            f"  each fine-tuning alone vs mean standalone: tau-b {', '.join(f'{t:+.3f}' for t in repeat_taus)} "
            f"(mean {np.mean(repeat_taus):+.3f}, sd {np.std(repeat_taus, ddof=1):.3f}); their average: "
            f"{results['fine_tuned']['mean']['tau']:+.3f}"
        )
    results["beyond_convs"] = beyond_feature("conv count", counts[:, 0], proxies, standalone, indices)
    difference = bootstrap_taus(recalibrated, mean_standalone, indices) - bootstrap_taus(
        batch_stats, mean_standalone, indices
    )
    low, high = interval(difference)
    gain = results["recalibrated"]["mean"]["tau"] - results["batch_stats"]["mean"]["tau"]
    results["recalibration_gain"] = {"value": gain, "interval": [low, high]}
    print(
        f"  recalibrated minus batch-stats (vs mean standalone): {gain:+.3f}  90% CI [{low:+.3f}, {high:+.3f}]"
    )

    # 6. Reward noise against spread.
    print(
        f"\nreward noise vs spread between children (shared weights; reward on one minibatch of n validation images "
        f"drawn with replacement; noise = RMS over children of the sd over {args.noise_draws} (batch-stats) / "
        f"{RECALIBRATED_DRAWS} (recalibrated) minibatches)"
    )
    spread = {
        "batch_stats": float(np.std(batch_stats, ddof=1)),
        "recalibrated": float(np.std(recalibrated, ddof=1)),
    }
    print(
        f"  spread (sd of full-validation scores over children): batch-stats {spread['batch_stats']:.4f}, "
        f"recalibrated {spread['recalibrated']:.4f}"
    )
    print(
        f"  {'n':>6} {'batch-stats noise':>18} {'noise/spread':>13} {'recalibrated noise':>19} {'noise/spread':>13}"
    )
    noise = {"batch_stats": {}, "recalibrated": {}}
    for n in args.noise_sizes:
        noise["batch_stats"][n] = float(
            np.sqrt(np.mean([np.var(s["batch_noise"][n], ddof=1) for s in shared]))
        )
        noise["recalibrated"][n] = float(
            np.sqrt(np.mean([np.var(s["recal_noise"][n], ddof=1) for s in shared]))
        )
        print(
            f"  {n:>6} {noise['batch_stats'][n]:>18.4f} {noise['batch_stats'][n] / spread['batch_stats']:>13.2f} "
            f"{noise['recalibrated'][n]:>19.4f} {noise['recalibrated'][n] / spread['recalibrated']:>13.2f}"
        )
    calibration_noise = None
    if args.calibration_draws:
        calibration_noise = float(
            np.sqrt(
                np.mean(
                    [np.var(s["calibration_scores"] + [s["recalibrated"]], ddof=1) for s in shared]
                )
            )
        )
        print(
            f"  choice of the {len(calibration)} calibration images (full validation, {args.calibration_draws + 1} "
            f"sets per child): sd {calibration_noise:.4f} = {calibration_noise / spread['recalibrated']:.2f} of the spread"
        )
    for key, label in (("batch_stats", "batch-stats"), ("recalibrated", "recalibrated")):
        # The smallest n from which every larger n measured keeps noise <= spread / 2.
        sizes = sorted(args.noise_sizes)
        small = [
            n
            for i, n in enumerate(sizes)
            if all(noise[key][m] <= 0.5 * spread[key] for m in sizes[i:])
        ]
        verdict = f"n >= {small[0]}" if small else f"no n up to {sizes[-1]}"
        print(f"  {label}: reward noise is at most half the spread for {verdict}")
    if mismatch > 1e-6:
        print(
            f"  odd: recalibrated evaluate() and predict() disagree by up to {mismatch:.4f} on the same images"
        )

    total = time.time() - began
    print("\nsummary")
    print(
        f"  {args.space} {args.layers} x {args.filters}, {len(x)} training / {len(x_val)} validation images; supernet "
        f"{args.supernet_epochs} {args.sampler} epochs (final training accuracy {tuner.history[-1]['train_accuracy']:.3f}); "
        f"{len(encodings)} children, standalone {args.standalone_epochs} epochs x seeds {tuple(args.standalone_seeds)}"
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
        f"  time: supernet {supernet_seconds:.0f} s, shared scoring {shared_seconds:.0f} s, standalone "
        f"{standalone_seconds:.0f} s; total wall time {total:.0f} s ({total / 60:.1f} min)"
    )

    if args.json:
        record = {
            "arguments": {
                k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
            },
            "code": source_state(),
            "supernet_history": tuner.history,
            "children": [
                {
                    "encoding": encoding.tolist(),
                    "summary": summary(space, encoding),
                    names[0]: int(counts[i, 0]),
                    names[1]: int(counts[i, 1]),
                    "params": params[i],
                    "batch_stats": float(batch_stats[i]),
                    "recalibrated": float(recalibrated[i]),
                    **({"fine_tuned": float(proxies["fine_tuned"][i])} if "fine_tuned" in proxies else {}),
                    **({"fine_tuned_repeats": repeat_scores[:, i].tolist()} if repeat_scores is not None else {}),
                    "calibration_scores": shared[i]["calibration_scores"],
                    "standalone": standalone[i].tolist(),
                }
                for i, encoding in enumerate(encodings)
            ],
            "taus": results,
            "spread": spread,
            "reward_noise": {
                key: {str(n): v for n, v in values.items()} for key, values in noise.items()
            },
            "calibration_noise": calibration_noise,
            "seconds": {
                "supernet": supernet_seconds,
                "shared": shared_seconds,
                "standalone": standalone_seconds,
                "total": total,
            },
        }
        with open(args.json, "w") as file:
            json.dump(record, file, indent=1, default=float)
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
