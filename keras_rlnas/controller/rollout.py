"""Sampling one architecture from the controller, decision by decision (NumPy)."""

import dataclasses

import numpy as np

from keras_rlnas.controller import policy
from keras_rlnas.controller.decisions import ANCHOR, CATEGORICAL, PICK, SKIP


@dataclasses.dataclass(frozen=True)
class Sample:
    """A sampled architecture.

    Attributes:
        actions: one entry per decision of the controller: an int (categorical,
            pick; 0 for an anchor), a tuple of 0/1 (skip), or `None` (the
            decision was not made).
        log_prob: log-probability of the actions under the policy that sampled them.
        entropy: summed entropy of the distributions the actions came from.
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
        self._controller = controller
        self._weights = controller.weights()
        self._greedy = greedy
        cfg = controller.config
        self._shape = (cfg["temperature"], cfg["tanh_constant"])
        self._layers = [
            (self._weights[f"lstm/{i}/kernel"], self._weights[f"lstm/{i}/bias"])
            for i in range(cfg["num_layers"])
        ]
        zeros = np.zeros((1, cfg["units"]), np.float32)
        self._zeros = zeros
        self._inputs = self._weights["start"]
        self._state = [(zeros, zeros)] * cfg["num_layers"]
        self._anchors = {}
        self.actions = [None] * len(controller.decisions)
        self.log_prob = 0.0
        self.entropy = 0.0

    def _choose(self, log_p):
        if self._greedy:
            return int(np.argmax(log_p))
        cumulative = np.cumsum(np.exp(log_p))
        draw = self._controller.rng.random() * cumulative[-1]
        return int(min(np.searchsorted(cumulative, draw, side="right"), len(log_p) - 1))

    def step(self, index, action=None):
        """Makes decision `index` (or scores the given `action`) and returns the action."""
        decision = self._controller.decisions[index]
        w = self._weights
        out, self._state = policy.lstm_step(np, self._layers, self._inputs, self._state)
        group = self._anchors.setdefault(decision.group, {})
        next_inputs = self._inputs
        if decision.kind == CATEGORICAL:
            logits = out @ w[f"head/{decision.head}/kernel"] + w[f"head/{decision.head}/bias"]
            log_p = policy.log_softmax(np, policy.shape_logits(np, logits, *self._shape))[0]
            action = self._choose(log_p) if action is None else int(action)
            self._add(log_p[action], policy.categorical_entropy(np, log_p))
            next_inputs = w[f"embedding/{decision.head}"][action][None]
        elif decision.kind in (SKIP, PICK) and decision.size:
            found = [group.get(j, (self._zeros, self._zeros)) for j in range(decision.size)]
            hs = np.concatenate([h for h, _ in found])
            proj = np.concatenate([p for _, p in found])[None]
            scores = policy.attention_scores(np, proj, out, w["attention/w_curr"], w["attention/v"])
            scores = policy.shape_logits(np, scores, *self._shape)[0]
            if decision.kind == SKIP:
                log_on, log_off = policy.bernoulli_log_probs(np, scores)
                if action is None:
                    if self._greedy:
                        bits = (log_on > log_off).astype(np.int32)
                    else:
                        bits = (self._controller.rng.random(decision.size) < np.exp(log_on)).astype(np.int32)
                else:
                    bits = np.asarray(action, np.int32)
                    if bits.shape != (decision.size,):
                        raise ValueError(f"Decision {decision.name!r} needs {decision.size} skip bits, got {action!r}.")
                entropy = -np.sum(np.exp(log_on) * log_on + np.exp(log_off) * log_off)
                self._add(np.sum(np.where(bits == 1, log_on, log_off)), entropy)
                next_inputs = (bits @ hs)[None] / (1.0 + bits.sum())
                action = tuple(int(b) for b in bits)
            else:
                log_p = policy.log_softmax(np, scores)
                action = self._choose(log_p) if action is None else int(action)
                self._add(log_p[action], policy.categorical_entropy(np, log_p))
                next_inputs = hs[action][None]
        elif decision.kind == SKIP:
            action = ()
        elif decision.kind == ANCHOR:
            # Made, with nothing to choose: 0 marks the step as taken.
            action = 0
        if decision.anchor is not None:
            group[decision.anchor] = (out, out @ w["attention/w_prev"])
        self._inputs = next_inputs.astype(np.float32)
        self.actions[index] = action
        return action

    def _add(self, log_prob, entropy):
        self.log_prob += float(log_prob)
        self.entropy += float(entropy)

    def finish(self):
        """The `Sample` made so far."""
        return Sample(tuple(self.actions), self.log_prob, self.entropy)
