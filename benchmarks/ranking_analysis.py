"""What a ranking says beyond the children's make-up, for a live run or saved `enas_ranking.py --json` runs.

`beyond_feature` ranks scores less their feature group's mean (does a proxy
say more than "this child has more convolutions"?); `analyse_saved` and
`ensemble_saved` read saved runs (`enas_ranking.py --analyse` / `--ensemble`).
"""

import itertools
import json
import os

import numpy as np
from rank_statistics import (
    bootstrap_indices,
    bootstrap_taus,
    centred_within,
    interval,
    kendall_tau_b,
)
from ranking_children import make_space, traits

PROXY_LABELS = {"batch_stats": "batch-stats", "recalibrated": "recalibrated", "fine_tuned": "fine-tuned"}


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
