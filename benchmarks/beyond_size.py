"""What a search finds beyond size: a control's scores fitted on its children's size, and each searcher's residual.

Where bigger children score higher (as uniformly random ENAS macro children do
at the budgets of this machine), a search can lead random children by finding
bigger ones, which a size rule would find without a search. The control's
scores are fitted by least squares on log10 of the parameter count; each
searcher's children are scored by their mean residual from that line. Its 90 %
interval holds both the residuals' own scatter and the fitted line's
uncertainty at the searcher's mean size, with Welch-Satterthwaite degrees of
freedom over the two. A searcher whose lead is all residual finds more than a
bigger child; one whose residual is nil finds what its size predicts. Used by
`search_pays.py` and `vs_random_runs.py`; `parameter_count` gives a child's size and
`largest_child` the size rule's choice (`peers.py --largest-of`, `enas_vs_random.py --searchers size`).
"""

import numpy as np
from scipy import stats


def parameter_count(space, architecture):
    """Parameters of an ENAS space's child at the space's width, built without compiling."""
    import keras

    count = space.build_child(architecture, compile=False).count_params()
    keras.backend.clear_session()
    return count


def largest_child(space, seeds):
    """The size rule: of the children `space.random_encoding` draws from `seeds`, the encoding with the most parameters."""
    encodings = [space.random_encoding(int(seed)) for seed in seeds]
    return encodings[int(np.argmax([parameter_count(space, encoding) for encoding in encodings]))]


def mean_residual(control_parameters, control_scores, parameters, scores, level=0.90):
    """`(mean residual, low, high)` of `scores` from the control's least-squares line on log10 parameters."""
    x, y = np.log10(control_parameters), np.asarray(control_scores, dtype=float)
    fit = stats.linregress(x, y)
    residual_variance = np.sum((y - fit.intercept - fit.slope * x) ** 2) / (len(x) - 2)
    searched_x = np.log10(parameters)
    residuals = np.asarray(scores, dtype=float) - fit.intercept - fit.slope * searched_x
    own = residuals.var(ddof=1) / len(residuals)
    line = residual_variance * (1 / len(x) + (searched_x.mean() - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2))
    freedom = (own + line) ** 2 / (own**2 / (len(residuals) - 1) + line**2 / (len(x) - 2))
    half = stats.t.ppf(0.5 + level / 2, freedom) * np.sqrt(own + line)
    return float(residuals.mean()), float(residuals.mean() - half), float(residuals.mean() + half)


def print_beyond_size(control_parameters, control_scores, searched, level=0.90):
    """Prints and returns the control's slope per tenfold parameters and each searcher's mean residual.

    Args:
        control_parameters, control_scores: the control's children; with
            fewer than 3 nothing is fitted.
        searched: `{label: (parameters, scores)}`; a searcher with fewer than
            2 children is left out.
        level: of every interval.

    Returns:
        `{"slope": [slope, low, high], "r": r, label: [residual, low, high]}`,
        or `None` when nothing is fitted. Each skip is printed with its reason.
    """
    if len(control_scores) < 3:
        print(f"\nbeyond size: not fitted, {len(control_scores)} random children (at least 3 are needed)")
        return None
    fit = stats.linregress(np.log10(control_parameters), control_scores)
    half = stats.t.ppf(0.5 + level / 2, len(control_scores) - 2) * fit.stderr
    figures = {"slope": [float(fit.slope), float(fit.slope - half), float(fit.slope + half)], "r": float(fit.rvalue)}
    print(f"\nbeyond size: the random children's score {fit.slope:+.4f} [{fit.slope - half:+.4f}, {fit.slope + half:+.4f}] "
          f"per tenfold parameters (least squares on log10, {level * 100:g} % interval, r = {fit.rvalue:+.2f}); "
          "each searcher's mean residual from that line:")
    smallest, largest = min(control_parameters), max(control_parameters)
    for label, (parameters, scores) in searched.items():
        if len(scores) < 2:
            print(f"  {label:<32} left out: {len(scores)} child")
            continue
        residual, low, high = figures[label] = list(
            mean_residual(control_parameters, control_scores, parameters, scores, level))
        outside = sum(not smallest <= n <= largest for n in parameters)
        note = f"; {outside} of {len(scores)} children outside the random children's sizes" if outside else ""
        print(f"  {label:<32} {residual:+.4f} [{low:+.4f}, {high:+.4f}]{note}")
    return figures
