"""The figures of one `enas_ranking.py` run: the children's table, rank agreement and reward noise.

Each function prints its block of the report and returns the figures that
`enas_ranking.py --json` saves.
"""

import numpy as np
from rank_statistics import bootstrap_indices, bootstrap_taus, interval, kendall_tau_b, tau_block
from ranking_analysis import PROXY_LABELS, beyond_feature
from ranking_children import summary

#: Batch-stats rewards are drawn `--noise-draws` times; recalibrated ones reuse per-image flags, so many draws are free.
RECALIBRATED_DRAWS = 200


def print_children(space, encodings, names, counts, params, proxies, standalone, seeds):
    """One row per child: its make-up, parameters, shared scores and standalone scores (NaN where skipped)."""
    batch_stats, recalibrated = proxies["batch_stats"], proxies["recalibrated"]
    tuned = proxies.get("fine_tuned", np.full(len(encodings), np.nan))
    print(
        f"\n{'child':>5} {names[0]:>5} {names[1]:>5}  {'ops':<22} {'params':>8} {'shared':>8} {'shared':>8} "
        f"{'shared':>8} {'alone':>7} {'alone':>7}"
    )
    print(
        f"{'':>5} {'':>5} {'':>5}  {'':<22} {'':>8} {'batch':>8} {'recal':>8} {'tuned':>8} "
        f"{'seed' + str(seeds[0]):>7} {'seed' + str(seeds[1]):>7}"
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


def rank_agreement(proxies, standalone, convs, repeat_scores, rng, bootstrap, permutations):
    """Kendall tau-b of every shared score against standalone training, with the noise ceiling.

    Args:
        proxies: `{key: shared-weight scores}` (keys of `PROXY_LABELS`).
        standalone: `(children, 2)` standalone scores of two seeds.
        convs: each child's conv count, for the ranking beyond it.
        repeat_scores: `(repeats, children)` fine-tuned scores, or `None`.
        rng: the NumPy generator of bootstrap resamples and permutations.
        bootstrap: bootstrap resamples of the children.
        permutations: permutations of the one-sided p-values.

    Returns:
        `{"ceiling": ..., key: {"mean", "seed1", "seed2", "single_run_fraction"}, "beyond_convs": ...,
        "recalibration_gain": ...}`.
    """
    mean_standalone = standalone.mean(axis=1)
    indices = bootstrap_indices(len(mean_standalone), bootstrap, rng)
    print(
        f"\nKendall tau-b over {len(mean_standalone)} children (90% bootstrap intervals over children, {bootstrap} "
        f"resamples; one-sided permutation p, {permutations} permutations)"
    )
    ceiling_draws = bootstrap_taus(standalone[:, 0], standalone[:, 1], indices)
    ceiling = tau_block(
        "noise ceiling: standalone seed 1 vs seed 2", standalone[:, 0], standalone[:, 1], indices, rng, permutations
    )
    results = {"ceiling": ceiling}
    for key, proxy in proxies.items():
        label = "shared " + PROXY_LABELS[key]
        results[key] = {
            "mean": tau_block(
                f"{label} vs mean standalone", proxy, mean_standalone, indices, rng, permutations,
                (ceiling["tau"], ceiling_draws),
            ),
            "seed1": tau_block(f"{label} vs seed 1", proxy, standalone[:, 0], indices, rng, permutations),
            "seed2": tau_block(f"{label} vs seed 2", proxy, standalone[:, 1], indices, rng, permutations),
        }
        single = (results[key]["seed1"]["tau"] + results[key]["seed2"]["tau"]) / 2
        single_draws = (
            bootstrap_taus(proxy, standalone[:, 0], indices)
            + bootstrap_taus(proxy, standalone[:, 1], indices)
        ) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            low, high = interval(single_draws / ceiling_draws)
        results[key]["single_run_fraction"] = {"value": single / ceiling["tau"], "interval": [low, high]}
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
    results["beyond_convs"] = beyond_feature("conv count", convs, proxies, standalone, indices)
    difference = bootstrap_taus(proxies["recalibrated"], mean_standalone, indices) - bootstrap_taus(
        proxies["batch_stats"], mean_standalone, indices
    )
    low, high = interval(difference)
    gain = results["recalibrated"]["mean"]["tau"] - results["batch_stats"]["mean"]["tau"]
    results["recalibration_gain"] = {"value": gain, "interval": [low, high]}
    print(f"  recalibrated minus batch-stats (vs mean standalone): {gain:+.3f}  90% CI [{low:+.3f}, {high:+.3f}]")
    return results


def reward_noise(shared, noise_sizes, noise_draws, calibration_size, calibration_draws):
    """The noise of a one-minibatch reward against the spread between children.

    Args:
        shared: each child's `ranking_scores.shared_scores` dict.
        noise_sizes: the reward minibatch sizes measured.
        noise_draws: batch-stats minibatches per child and size.
        calibration_size: images per BN calibration set.
        calibration_draws: extra calibration sets per child (0: none).

    Returns:
        `(spread, noise, calibration_noise)`: `{key: sd over children}`,
        `{key: {n: RMS noise}}` and the sd from the choice of calibration
        images (`None` without extra sets).
    """
    batch_stats = np.array([s["batch_stats"] for s in shared])
    recalibrated = np.array([s["recalibrated"] for s in shared])
    print(
        f"\nreward noise vs spread between children (shared weights; reward on one minibatch of n validation images "
        f"drawn with replacement; noise = RMS over children of the sd over {noise_draws} (batch-stats) / "
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
    print(f"  {'n':>6} {'batch-stats noise':>18} {'noise/spread':>13} {'recalibrated noise':>19} {'noise/spread':>13}")
    noise = {"batch_stats": {}, "recalibrated": {}}
    for n in noise_sizes:
        noise["batch_stats"][n] = float(np.sqrt(np.mean([np.var(s["batch_noise"][n], ddof=1) for s in shared])))
        noise["recalibrated"][n] = float(np.sqrt(np.mean([np.var(s["recal_noise"][n], ddof=1) for s in shared])))
        print(
            f"  {n:>6} {noise['batch_stats'][n]:>18.4f} {noise['batch_stats'][n] / spread['batch_stats']:>13.2f} "
            f"{noise['recalibrated'][n]:>19.4f} {noise['recalibrated'][n] / spread['recalibrated']:>13.2f}"
        )
    calibration_noise = None
    if calibration_draws:
        calibration_noise = float(
            np.sqrt(np.mean([np.var(s["calibration_scores"] + [s["recalibrated"]], ddof=1) for s in shared]))
        )
        print(
            f"  choice of the {calibration_size} calibration images (full validation, {calibration_draws + 1} "
            f"sets per child): sd {calibration_noise:.4f} = {calibration_noise / spread['recalibrated']:.2f} of the spread"
        )
    for key, label in (("batch_stats", "batch-stats"), ("recalibrated", "recalibrated")):
        # The smallest n from which every larger n measured keeps noise <= spread / 2.
        sizes = sorted(noise_sizes)
        small = [n for i, n in enumerate(sizes) if all(noise[key][m] <= 0.5 * spread[key] for m in sizes[i:])]
        verdict = f"n >= {small[0]}" if small else f"no n up to {sizes[-1]}"
        print(f"  {label}: reward noise is at most half the spread for {verdict}")
    mismatch = max(s["mismatch"] for s in shared)
    if mismatch > 1e-6:
        print(f"  odd: recalibrated evaluate() and predict() disagree by up to {mismatch:.4f} on the same images")
    return spread, noise, calibration_noise
