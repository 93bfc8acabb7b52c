"""Rewards: what a finished trial is worth to the controller (higher is better)."""

import math

from keras_rlnas import _checks as checks


def objective_reward(trial, objective):
    """The trial's score in the objective's direction: a "min" objective is negated.

    Example:

    >>> import keras_tuner
    >>> trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters())
    >>> trial.score = 0.25
    >>> objective_reward(trial, keras_tuner.Objective("val_loss", "min"))
    -0.25
    """
    score = float(trial.score)
    return score if objective.direction == "max" else -score


class WindowedPowerReward:
    """Zoph & Le's reward: the best objective value of the last `window` epochs, to a power.

    Reads the per-epoch history of the objective when the trial recorded one
    (several observations); otherwise the trial's best value. The objective
    must be "max" (an accuracy).

    Args:
        window: number of final epochs to take the maximum over.
        power: exponent (3 in the paper: small gains near the top weigh more).

    Example:

    >>> import keras_tuner
    >>> trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters())
    >>> trial.score = 0.5
    >>> WindowedPowerReward()(trial, keras_tuner.Objective("val_accuracy", "max"))
    0.125
    """

    def __init__(self, window=5, power=3.0):
        self.window = checks.positive_int("window", window)
        self.power = checks.positive_float("power", power)

    def check(self, objective):
        """Raises a `ValueError` unless `objective` is one this reward can score (a "max" one)."""
        if objective.direction != "max":
            raise ValueError(f"The 'nas' reward needs a 'max' objective, got {objective.name!r} ({objective.direction}).")

    def __call__(self, trial, objective):
        self.check(objective)
        value = float(trial.score)
        if trial.metrics.exists(objective.name):
            history = trial.metrics.get_history(objective.name)
            if len(history) > 1:
                value = max(float(o.mean()) for o in history[-self.window :])
        return math.copysign(abs(value) ** self.power, value)


PRESETS = {"objective": objective_reward, "nas": WindowedPowerReward()}


def get(reward):
    """A reward function from a preset name or a callable `fn(trial, objective) -> float`."""
    if callable(reward):
        return reward
    if reward in PRESETS:
        return PRESETS[reward]
    raise ValueError(f"Unknown reward {reward!r}: pass a callable or one of {sorted(PRESETS)}.")
