"""Random search without weight sharing: keep the best of N random children, each trained once.

Reads the children of an `enas_vs_random.py --retrain-more` run (every child
retrained with several seeds) and asks what ENAS's margin should be weighed
against: a search that draws N random children, trains each once with the
benchmark's recipe, and keeps the one that scores best.

Method
------
For each N, over every N-subset of the random children and every retraining
seed `p` as the one training the search sees: the kept child is the subset's
best on seed `p`, and it is scored by the mean of its other seeds, against the
mean of those seeds over all random children. That gain is exact (each child
is the best of a subset with the hypergeometric probability of its rank, no
sampling), and is given in the units of `enas_vs_random.py`'s margins: the sd
of the random children's means over all seeds. Its 90 % interval resamples
the random children. Keeping a child on the seed it is then scored on would
count the luck of that seed as skill; scoring on the other seeds does not.

`--time K` retrains K of the first saved run's random children with that
run's recipe and times each, and prints the N that one search's wall time
(the saved runs' `search_seconds` of each searcher) would buy instead. The
searches were timed when they ran, so that ratio mixes two loads: both are
printed.

    python benchmarks/best_of_n.py benchmarks/results/enas_vs_random_macro_retrained3_seeds0-5.json
    python benchmarks/best_of_n.py benchmarks/results/enas_vs_random_macro_retrained3_seeds0-5.json --time 3
    python benchmarks/best_of_n.py benchmarks/results/enas_vs_random_macro_retrained3_seeds0-5.json \
        --joined "ENAS (controller)"

`--joined LABEL` asks the same of a search whose last choice also trains N
random children (`ENASTuner(finalist_epochs=..., uniform_finalists=N)`):
each search seed's LABEL child and N random children are each trained once,
and the best is kept, scored on its other seeds as above. It stands for the
stage's five or six derived candidates by the one retrained child, and for
its choice on validation images by a choice on another seed's test images.
"""

import argparse
import json
import os
import time
from math import comb

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def kept_probabilities(children, n):
    """For each rank r (0-based, lowest first) among `children`, the probability it is a random `n`-subset's best.

    That is C(r, n-1) / C(children, n); all zero for `n = 0`.
    """
    if not n:
        return np.zeros(children)
    return np.array([comb(rank, n - 1) for rank in range(children)], float) / comb(children, n)


def by_seen_seed(scores):
    """For each retraining seed a search would see: `(seed, its scores sorted, the children's means over the
    other seeds in that order, the mean of those)`."""
    for seen in range(scores.shape[1]):
        unseen = np.delete(scores, seen, axis=1).mean(axis=1)
        order = np.argsort(scores[:, seen], kind="stable")
        yield seen, scores[order, seen], unseen[order], float(unseen.mean())


def best_of_n_gain(scores, n):
    """Expected gain of keeping the best of `n` random children by one retraining.

    Args:
        scores: `(children, seeds)` test accuracies, at least two seeds.
        n: children drawn, `1 <= n <= children`.

    Returns:
        The kept child's mean over the other seeds minus all children's mean
        over those seeds, averaged over every `n`-subset and every seed seen.
    """
    scores = np.asarray(scores, float)
    children, seeds = scores.shape
    if seeds < 2:
        raise ValueError(f"`scores` needs at least two retraining seeds per child, got shape {scores.shape}.")
    if not 1 <= n <= children:
        raise ValueError(f"`n` must be between 1 and the {children} children, got {n}.")
    kept = kept_probabilities(children, n)
    return float(np.mean([kept @ unseen - unseen_mean for _, _, unseen, unseen_mean in by_seen_seed(scores)]))


def joined_gain(scores, searched, n):
    """Expected gain of keeping the best of a searched child and `n` random children, by one retraining.

    What `ENASTuner(finalist_epochs=..., uniform_finalists=n)` would give if
    its stage trained the searched child and `n` random children once each
    with the benchmark's recipe and kept the best.

    Args:
        scores: `(children, seeds)` test accuracies of the random children.
        searched: `(runs, seeds)` test accuracies of the searched children,
            one per search seed, with the same retraining seeds.
        n: random children drawn, `0 <= n <= children`.

    Returns:
        As `best_of_n_gain`, averaged over the searched children too; the
        searched child is kept on a tie.
    """
    scores, searched = np.asarray(scores, float), np.asarray(searched, float)
    children, seeds = scores.shape
    if searched.ndim != 2 or searched.shape[1] != seeds:
        raise ValueError(f"`searched` needs shape (runs, {seeds}), got {searched.shape}.")
    if not 0 <= n <= children:
        raise ValueError(f"`n` must be between 0 and the {children} children, got {n}.")
    kept = kept_probabilities(children, n)
    gains = []
    for seen, seen_sorted, unseen_sorted, unseen_mean in by_seen_seed(scores):
        for child in searched:
            beaten = seen_sorted > child[seen]  # the random subset's best displaces the searched child
            searched_unseen = float(np.delete(child, seen).mean())
            expected = kept[beaten] @ unseen_sorted[beaten] + (1.0 - kept[beaten].sum()) * searched_unseen
            gains.append(float(expected) - unseen_mean)
    return float(np.mean(gains))


def bootstrap_in_sd(scores, gain_of, resamples, rng):
    """90 % bootstrap interval of `gain_of(resampled children)`, in sd of the resampled children's means."""
    draws = []
    for _ in range(resamples):
        sample = scores[rng.integers(0, len(scores), len(scores))]
        sample_sd = float(sample.mean(axis=1).std(ddof=1))
        if sample_sd > 0:
            draws.append(gain_of(sample) / sample_sd)
    return [float(v) for v in np.percentile(draws, [5, 95])]


def gain_table(scores, sizes, resamples, rng):
    """`{n: (gain, gain in sd of the children's means, 90 % bootstrap interval in sd)}`."""
    scores = np.asarray(scores, float)
    sd = float(scores.mean(axis=1).std(ddof=1))
    table = {}
    for n in sizes:
        gain = best_of_n_gain(scores, n)
        interval = bootstrap_in_sd(scores, lambda sample, n=n: best_of_n_gain(sample, n), resamples, rng)
        table[n] = (gain, gain / sd, interval)
    return table


def print_joined(random, retrained, label, sizes, resamples, rng):
    """The `--joined` table: the best of a searched child and N random children, in sd of the random means."""
    searched = np.array([child["test"] for child in retrained["children"] if child["name"] == label])
    if not len(searched):
        names = sorted({child["name"] for child in retrained["children"] if not child["name"].startswith("random")})
        raise SystemExit(f"--joined: no child named {label!r}; the searched children are {names}")
    sd = float(random.mean(axis=1).std(ddof=1))
    print(f"kept: the best of the {label} child ({len(searched)} search seeds) and N random children, "
          "on one retraining, scored on the others (90% bootstrap over search seeds and random children)")
    for n in sizes:
        def gain_of(sample, n=n):  # the search seeds are resampled too
            return joined_gain(sample, searched[rng.integers(0, len(searched), len(searched))], n)

        low, high = bootstrap_in_sd(random, gain_of, resamples, rng)
        gain = joined_gain(random, searched, n)
        print(f"  N = {n:>2}: {gain:+.4f} = {gain / sd:+.2f} sd [{low:+.2f}, {high:+.2f}]")


def time_random_children(retrained, count):
    """Seconds of `count` retrainings of the first saved run's random children, with that run's recipe."""
    from vs_random_runs import (  # this folder is on the path
        make_space,
        random_encodings_of,
        test_accuracy,
    )

    import keras_rlnas

    run = json.load(open(retrained["runs"][0]))
    args = argparse.Namespace(**run["arguments"])
    (x, y), _, (x_test, y_test), info = keras_rlnas.datasets.load_arrays("fashion_mnist", limit=args.limit)
    space = make_space(args, info)
    seconds = []
    for encoding in random_encodings_of(run, space)[:count]:
        start = time.time()
        accuracy = test_accuracy(space, space.decode(np.asarray(encoding)), (x, y), (x_test[: args.test], y_test[: args.test]),
                                 args, args.seed + 1)
        seconds.append(time.time() - start)
        print(f"random child retrained in {seconds[-1]:.1f} s (test accuracy {accuracy:.4f})", flush=True)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("retrained", help="JSON written by enas_vs_random.py --retrain-more --json")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 6, 8, 12, 16, 24])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--joined", metavar="LABEL",
                        help="also the best of each search seed's LABEL child and N random children "
                        "(e.g. 'ENAS (controller)')")
    parser.add_argument("--time", type=int, default=0, metavar="K", help="retrain K random children to time one training")
    args = parser.parse_args()
    retrained = json.load(open(args.retrained))
    random = np.array([child["test"] for child in retrained["children"] if child["name"].startswith("random child")])
    sizes = [n for n in args.sizes if n <= len(random)]
    means = random.mean(axis=1)
    print(f"{len(random)} random children, {random.shape[1]} retrainings each: mean {means.mean():.4f}, "
          f"sd of their means {means.std(ddof=1):.4f}")
    print("kept: the best of N on one retraining, scored on the others (gain over the mean; 90% bootstrap over children)")
    for n, (gain, in_sd, (low, high)) in gain_table(random, sizes, args.bootstrap, np.random.default_rng(0)).items():
        print(f"  N = {n:>2}: {gain:+.4f} = {in_sd:+.2f} sd [{low:+.2f}, {high:+.2f}]")
    if args.joined:
        print_joined(random, retrained, args.joined, [0] + sizes, args.bootstrap, np.random.default_rng(0))
    searched = {label: figure["margin_in_sd"] for label, figure in retrained["figures"].items()}
    print("the searches' margins over the random mean, in the same sd: "
          + ", ".join(f"{label} {value:+.2f}" for label, value in searched.items()))
    if args.time:
        load_at_start = os.getloadavg()[0]
        seconds = float(np.mean(time_random_children(retrained, args.time)))
        runs = [json.load(open(path)) for path in retrained["runs"]]
        print(f"one retraining: {seconds:.1f} s (load average {load_at_start:.2f} at start, {os.getloadavg()[0]:.2f} at end)")
        for label in runs[0]["rows"]:
            search_seconds = float(np.mean([run["rows"][label]["search_seconds"] for run in runs]))
            print(f"  {label}: {search_seconds:.0f} s per search (mean of {len(runs)}) = "
                  f"{search_seconds / seconds:.1f} retrainings")


if __name__ == "__main__":
    main()
