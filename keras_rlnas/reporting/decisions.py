"""The controller's current policy, estimated per hyperparameter by sampling it."""

import dataclasses

import keras_tuner
import numpy as np

from keras_rlnas.spaces import structured

HP = keras_tuner.engine.hyperparameters

# Int / Float hyperparameters with more distinct sampled values are shown in bins.
MAX_LABELS = 12


@dataclasses.dataclass
class DecisionRow:
    """How often each value of one hyperparameter is sampled.

    Attributes:
        name: the hyperparameter's name.
        labels: the values (or value ranges), as strings.
        probabilities: one probability per label (sums to 1).
        samples: number of samples in which the hyperparameter was active.
    """

    name: str
    labels: list
    probabilities: np.ndarray
    samples: int


def sample_values(controller, decision_map, hyperparameters, samples=500):
    """Hyperparameter values of `samples` architectures drawn from the controller.

    The controller's random state is restored afterwards, so looking at the
    policy does not change what a running or resumed search samples next.

    Returns:
        A list of `{name: value}` dicts (active hyperparameters only).
    """
    state = controller.rng.bit_generator.state
    try:
        return [decision_map.sample(hyperparameters, controller)[0] for _ in range(int(samples))]
    finally:
        controller.rng.bit_generator.state = state


def _labels_and_index(hp, sampled):
    """Labels for a hyperparameter and a function mapping a value to its label index."""
    if isinstance(hp, HP.Boolean):
        return ["False", "True"], lambda v: int(bool(v))
    if isinstance(hp, HP.Choice):
        return [str(v) for v in hp.values], list(hp.values).index
    distinct = sorted(set(sampled))
    if len(distinct) <= MAX_LABELS:
        return [f"{v:.3g}" if isinstance(v, float) else str(v) for v in distinct], distinct.index
    bins = MAX_LABELS // 2
    edges = [hp.prob_to_value(min(k / bins, 1.0 - 1e-9)) for k in range(bins + 1)]
    labels = [f"{edges[k]:.3g}-{edges[k + 1]:.3g}" for k in range(bins)]
    return labels, lambda v: min(int(hp.value_to_prob(v) * bins), bins - 1)


def decision_probabilities(values_list, hyperparameters):
    """Per-hyperparameter value frequencies and per-group skip probabilities.

    Args:
        values_list: sampled `{name: value}` dicts (see `sample_values`).
        hyperparameters: the `keras_tuner.HyperParameters` of the space.

    Returns:
        `(rows, skips)`: a list of `DecisionRow` for every sampled
        hyperparameter except skip Booleans, and `{group: matrix}` where
        `matrix[i, j]` is the probability that position `i` reads position
        `j` by a skip connection (NaN where there is no such choice).

    Example:

    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> _ = hp.Choice("units", [16, 32])
    >>> rows, skips = decision_probabilities([{"units": 16}, {"units": 16}, {"units": 32}], hp)
    >>> rows[0].labels, rows[0].probabilities.round(2).tolist()
    (['16', '32'], [0.67, 0.33])
    """
    rows, skip_bits = [], {}
    for hp in hyperparameters.space:
        if isinstance(hp, HP.Fixed):
            continue
        sampled = [values[hp.name] for values in values_list if hp.name in values]
        parsed = structured.parse_name(hp.name)
        source = structured.skip_source(parsed[2]) if parsed else None
        if source is not None:
            group, index = parsed[0], parsed[1]
            skip_bits.setdefault(group, {})[(index, source)] = np.mean(sampled) if sampled else np.nan
            continue
        if not sampled:
            continue
        labels, index_of = _labels_and_index(hp, sampled)
        counts = np.zeros(len(labels))
        for value in sampled:
            counts[index_of(value)] += 1
        rows.append(DecisionRow(hp.name, labels, counts / counts.sum(), len(sampled)))
    skips = {}
    for group, bits in skip_bits.items():
        size = max(i for i, _ in bits) + 1
        matrix = np.full((size, size), np.nan)
        for (i, j), p in bits.items():
            matrix[i, j] = p
        skips[group] = matrix
    return rows, skips


def policy_probabilities(view, samples=500):
    """`decision_probabilities` of the controller in a `ControllerView`, or `None` without one."""
    if view.controller is None or view.decision_map is None or view.hyperparameters is None:
        return None
    values = sample_values(view.controller, view.decision_map, view.hyperparameters, samples)
    return decision_probabilities(values, view.hyperparameters)
