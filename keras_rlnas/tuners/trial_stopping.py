"""Stopping hopeless trials early: the median stopping rule.

A search spends most of its time training children that will not win. The
median stopping rule of Google Vizier (Golovin et al., 2017) stops a trial at
epoch `s` when its best objective so far is worse than the median, over the
trials already finished, of their objective averaged over epochs `1..s`. It
needs no model of the learning curves and never stops a trial that is ahead
of half of the others at the same point.

A stopped trial ends as a completed trial scored with the best objective it
reached, and that score is its reward: an underestimate of what it would
have reached, on purpose, since the rule only stops children already behind
the median ones at the same epoch.
"""

import logging

import keras
import numpy as np

from keras_rlnas import _checks as checks

logger = logging.getLogger(__name__)


class MedianStoppingRule:
    """Stops a trial whose best objective is worse than the median running average of finished trials.

    Args:
        min_trials: finished trials that reached the epoch needed before the
            rule stops anything there.
        grace_epochs: epochs every trial trains before it can be stopped.

    Example:

    >>> from keras_rlnas import MedianStoppingRule
    >>> rule = MedianStoppingRule(min_trials=3, grace_epochs=1)
    >>> finished = [[0.80, 0.85, 0.86], [0.78, 0.83, 0.85], [0.82, 0.86, 0.88]]
    >>> rule.should_stop([0.50, 0.55], finished, "max")
    True
    >>> rule.should_stop([0.79, 0.84], finished, "max")
    False
    >>> rule.should_stop([0.10], finished, "max")  # still in its grace epochs
    False
    """

    def __init__(self, min_trials=5, grace_epochs=1):
        self.min_trials = checks.positive_int("min_trials", min_trials)
        self.grace_epochs = checks.positive_int("grace_epochs", grace_epochs, minimum=0)

    def should_stop(self, curve, finished_curves, direction):
        """Whether a trial with objective `curve` (one value per epoch so far) should stop.

        Args:
            curve: the running trial's objective after each epoch so far.
            finished_curves: the same for every finished trial.
            direction: `"max"` or `"min"`, the objective's direction.

        Returns:
            `True` when the trial's best value so far is behind the median of
            the finished trials' mean over the same epochs.
        """
        if direction not in ("max", "min"):
            raise ValueError(f"`direction` must be 'max' or 'min', got {direction!r}.")
        epochs = len(curve)
        if epochs <= self.grace_epochs:
            return False
        averages = [float(np.mean(other[:epochs])) for other in finished_curves if len(other) >= epochs]
        if len(averages) < self.min_trials:
            return False
        median = float(np.median(averages))
        if direction == "max":
            return max(curve) < median
        return min(curve) > median

    def get_config(self):
        return {"min_trials": self.min_trials, "grace_epochs": self.grace_epochs}


class TrialStoppingCallback(keras.callbacks.Callback):
    """Records a trial's objective after each epoch and stops training when `rule` says so.

    Args:
        rule: a `MedianStoppingRule` (or any object with its `should_stop`).
        objective: the tuner's `keras_tuner.Objective`.
        finished_curves: the objective curves of the finished trials (read only).
    """

    def __init__(self, rule, objective, finished_curves):
        super().__init__()
        self.rule = rule
        self.objective = objective
        self.finished_curves = finished_curves
        self.curve = []
        self.stopped_after = None

    def __deepcopy__(self, memo):
        # Keras Tuner deep-copies a trial's callbacks for each execution; the
        # tuner reads this one's curve afterwards, so every execution shares it.
        return self

    def on_train_begin(self, logs=None):
        self.curve, self.stopped_after = [], None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.objective.name)
        if value is None or not np.isfinite(value):
            return
        self.curve.append(float(value))
        if self.rule.should_stop(self.curve, self.finished_curves, self.objective.direction):
            self.stopped_after = epoch + 1
            self.model.stop_training = True
