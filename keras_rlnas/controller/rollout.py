"""Sampling one architecture from the controller, decision by decision (NumPy)."""

import dataclasses

import numpy as np

from keras_rlnas.controller import steps
from keras_rlnas.controller.decisions import ANCHOR, SKIP


@dataclasses.dataclass(frozen=True)
class Sample:
    """A sampled architecture.

    Attributes:
        actions: one entry per decision of the controller: an int (categorical,
            pick; 0 for an anchor), a tuple of 0/1 (skip), or `None` (the
            decision was not made).
        log_prob: log-probability of the actions under the policy that sampled them.
        entropy: summed entropy of the distributions the actions came from.

    Example:

    >>> from keras_rlnas.controller import Controller, Decision
    >>> controller = Controller([Decision("op", "categorical", size=3)], seed=0)
    >>> sample = controller.sample()
    >>> sample.actions[0] in (0, 1, 2) and sample.log_prob < 0.0
    True
    """

    actions: tuple
    log_prob: float = 0.0
    entropy: float = 0.0


class Rollout:
    """Walks the controller's decisions in order, sampling or scoring each.

    Decisions may be skipped (a conditional hyperparameter that is inactive):
    the LSTM then does not step, exactly as the batched TensorFlow graph masks it.

    Args:
        controller: the `Controller`.
        greedy: take the most likely choice instead of sampling.
    """

    def __init__(self, controller, greedy=False):
        self._decisions = controller.decisions
        weights = controller.weights()
        self._walk = steps.Walk(np, weights, controller.config, weights["start"])
        self._sampler = steps.Sampler(controller.rng, greedy)
        self.actions = [None] * len(controller.decisions)
        self.log_prob = 0.0
        self.entropy = 0.0

    def step(self, index, action=None):
        """Makes decision `index` (or scores the given `action`) and returns the action."""
        decision = self._decisions[index]
        choose = self._sampler if action is None else steps.Given(_as_row(decision, action))
        outcome = self._walk.step(decision, choose)
        self.log_prob += float(outcome.log_prob[0])
        self.entropy += float(outcome.entropy[0])
        if decision.kind == ANCHOR:
            action = 0  # Made, with nothing to choose: 0 marks the step as taken.
        elif decision.kind == SKIP:
            action = tuple(int(b) for b in outcome.action[0])
        else:
            action = int(outcome.action[0])
        self.actions[index] = action
        return action

    def finish(self):
        """The `Sample` made so far."""
        return Sample(tuple(self.actions), self.log_prob, self.entropy)


def _as_row(decision, action):
    """A given action as the `[1, width]` ints `steps.Given` reads."""
    if decision.kind != SKIP:
        return np.array([[int(action)]])
    bits = np.asarray(action, np.int32)
    if bits.shape != (decision.size,):
        raise ValueError(f"Decision {decision.name!r} needs {decision.size} skip bits, got {action!r}.")
    return bits[None]
