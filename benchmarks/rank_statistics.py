"""Rank statistics of the ranking benchmarks: Kendall tau-b, Spearman's rho, bootstrap and permutation tests.

Written for a few dozen children: every bootstrap resample's tau-b is computed
at once over the rows of one array, so 2,000 resamples take well under a
second. Used by `enas_ranking.py`, `enas_few_shot.py` and `zero_cost_ranking.py`.
"""

import numpy as np


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


def tau_block(name, proxy, reference, indices, rng, permutations, ceiling=None):
    """Prints tau-b, interval, p-value and rho of `proxy` against `reference`; returns the figures.

    `ceiling`: `(tau, bootstrap draws on the same resamples)` of the noise
    ceiling, to report the fraction of it too.
    """
    tau = kendall_tau_b(proxy, reference)
    draws = bootstrap_taus(proxy, reference, indices)
    low, high = interval(draws)
    p = permutation_p_value(proxy, reference, kendall_tau_b, rng, permutations)
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
