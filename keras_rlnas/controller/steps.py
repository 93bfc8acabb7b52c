"""One controller step per decision kind, written once for NumPy and TensorFlow.

Sampling (`Rollout`: NumPy, one architecture, microseconds a step) and the
REINFORCE update (`Controller`: TensorFlow, a batch of architectures under a
gradient tape) walk the decisions with the same `Walk` and the same step
function per kind, each with its own array module `xp` (`numpy` or
`tensorflow.experimental.numpy`), as `policy.py` does for the LSTM and the
attention. Every array has a leading batch axis: 1 when sampling.

The only thing the two paths do differently is pick the action: a `Sampler`
draws it from the distribution the step computed, `Given` returns the one
already taken (teacher forcing, to score it).
"""

from typing import Any, NamedTuple

import numpy as np

from keras_rlnas.controller import policy
from keras_rlnas.controller.decisions import ANCHOR, CATEGORICAL, PICK, SKIP


class Outcome(NamedTuple):
    """What one decision step produced, per sample of the batch.

    Attributes:
        action: `[batch]` ints (categorical, pick), `[batch, size]` 0/1 bits
            (skip) or `None` (anchor: nothing to choose).
        log_prob: `[batch]` log-probability of the action.
        entropy: `[batch]` entropy of the distribution it came from.
        next_inputs: `[batch, units]`, what the LSTM reads at the next step.
        skip_kl: `[batch]` KL of the skip bits' rates to the target, summed
            over the `skip_bits` bits (0 for other kinds).
        skip_bits: how many skip bits `skip_kl` sums over.
    """

    action: Any
    log_prob: Any
    entropy: Any
    next_inputs: Any
    skip_kl: Any = 0.0
    skip_bits: int = 0


class Sampler:
    """Draws each action from its distribution (NumPy, a batch of one).

    Args:
        rng: the controller's `numpy.random.Generator`.
        greedy: take the most likely action instead.
    """

    def __init__(self, rng, greedy=False):
        self.rng = rng
        self.greedy = greedy

    def one(self, log_p):
        if self.greedy:
            return np.argmax(log_p, axis=-1)
        # One uniform draw per choice keeps the random stream short and stable.
        cumulative = np.cumsum(np.exp(log_p[0]))
        draw = self.rng.random() * cumulative[-1]
        return np.array([min(np.searchsorted(cumulative, draw, side="right"), len(cumulative) - 1)])

    def bits(self, log_on, log_off):
        if self.greedy:
            return (log_on > log_off).astype(np.int32)
        return (self.rng.random(log_on.shape) < np.exp(log_on)).astype(np.int32)


class Given:
    """Actions already taken, as `[batch, width]` ints (see `Decision.width`)."""

    def __init__(self, actions):
        self.actions = actions

    def one(self, log_p):
        return self.actions[:, 0]

    def bits(self, log_on, log_off):
        return self.actions[:, : log_on.shape[-1]]


class Walk:
    """The controller between two decisions: LSTM input and state, recorded anchors.

    Args:
        xp: `numpy` or `tensorflow.experimental.numpy`.
        weights: the controller's weights by name, as arrays of `xp`.
        config: the controller's config (layers, logit shaping, skip target).
        inputs: `[batch, units]`, the first input (the learned start token).
        with_skip_kl: compute `Outcome.skip_kl` (only the skip penalty of
            the loss reads it; sampling leaves it out to stay fast).
    """

    def __init__(self, xp, weights, config, inputs, with_skip_kl=False):
        self.xp = xp
        self.with_skip_kl = with_skip_kl
        self.weights = weights
        self.temperature = config["temperature"]
        self.tanh_constant = config["tanh_constant"]
        self.skip_target = config["skip_target"]
        self.layers = [(weights[f"lstm/{i}/kernel"], weights[f"lstm/{i}/bias"]) for i in range(config["num_layers"])]
        self.zeros = xp.zeros_like(inputs)
        self.start = inputs
        self.inputs = inputs
        self.state = [(self.zeros, self.zeros)] * config["num_layers"]
        # group -> position -> (hidden state, hidden state @ W_prev)
        self.anchors = {}

    def step(self, decision, choose, active=None):
        """Makes `decision`: the LSTM steps, the decision's kind acts, its anchor is recorded.

        Args:
            decision: the `Decision`.
            choose: a `Sampler` or `Given`.
            active: `[batch, 1]` 1.0 for the samples that make this decision
                and 0.0 for those that skip it (their state is kept), or `None`.

        Returns:
            The step's `Outcome`.
        """
        out, state = policy.lstm_step(self.xp, self.layers, self.inputs, self.state)
        group = self.anchors.setdefault(decision.group, {})
        outcome = STEPS[decision.kind](self, decision, out, group, choose)
        if decision.anchor is not None:
            recorded = (out, self.xp.matmul(out, self.weights["attention/w_prev"]))
            group[decision.anchor] = _blend(active, recorded, group.get(decision.anchor, (self.zeros, self.zeros)))
        self.state = [_blend(active, new, old) for new, old in zip(state, self.state)]
        self.inputs = _blend(active, (outcome.next_inputs,), (self.inputs,))[0]
        return outcome

    def shape_logits(self, logits):
        return policy.shape_logits(self.xp, logits, self.temperature, self.tanh_constant)

    def nothing(self):
        """`[batch]` zeros."""
        return self.zeros[:, 0]


def _blend(active, new, old):
    if active is None:
        return new
    return tuple(active * n + (1.0 - active) * o for n, o in zip(new, old))


def _take(xp, values, index):
    """`values[b, index[b]]` for every `b`: `[batch, n, ...]` -> `[batch, ...]`."""
    if xp is np:
        # Plain indexing: a quarter of take_along_axis's cost on a batch of one.
        return values[np.arange(len(index)), index]
    index = index[:, None] if len(values.shape) == 2 else index[:, None, None]
    return xp.take_along_axis(values, index, axis=1)[:, 0]


def _attend(walk, decision, out, group):
    """The group's first `decision.size` anchors and the attention logits over them."""
    xp, w = walk.xp, walk.weights
    found = [group.get(j, (walk.zeros, walk.zeros)) for j in range(decision.size)]
    hidden = xp.stack([h for h, _ in found], axis=1)
    projected = xp.stack([p for _, p in found], axis=1)
    scores = policy.attention_scores(xp, projected, out, w["attention/w_curr"], w["attention/v"])
    return hidden, walk.shape_logits(scores)


def categorical_step(walk, decision, out, group, choose):
    """One of `size` choices from the softmax head of the decision's key."""
    xp, w, head = walk.xp, walk.weights, decision.head
    logits = xp.matmul(out, w[f"head/{head}/kernel"]) + w[f"head/{head}/bias"]
    log_p = policy.log_softmax(xp, walk.shape_logits(logits))
    action = choose.one(log_p)
    embedding = xp.take(w[f"embedding/{head}"], action, axis=0)
    return Outcome(action, _take(xp, log_p, action), policy.categorical_entropy(xp, log_p), embedding)


def pick_step(walk, decision, out, group, choose):
    """One earlier position, by softmax over the attention logits; reads its hidden state next."""
    xp = walk.xp
    hidden, scores = _attend(walk, decision, out, group)
    log_p = policy.log_softmax(xp, scores)
    action = choose.one(log_p)
    return Outcome(action, _take(xp, log_p, action), policy.categorical_entropy(xp, log_p), _take(xp, hidden, action))


def skip_step(walk, decision, out, group, choose):
    """A subset of earlier positions, one Bernoulli each; reads their mean hidden state next."""
    xp = walk.xp
    if not decision.size:
        # The first position has nothing to connect to: no choice. As in the reference
        # code, the LSTM reads the start token next, not the op it has just read.
        return Outcome(walk.zeros[:, :0], walk.nothing(), walk.nothing(), walk.start)
    hidden, scores = _attend(walk, decision, out, group)
    # The reference code samples each bit from a softmax over [-s, s]: logit 2s,
    # so under the tanh constant c a bit can be sigmoid(2c) sure, not sigmoid(c).
    log_on, log_off = policy.bernoulli_log_probs(xp, 2.0 * scores)
    bits = choose.bits(log_on, log_off)
    on = xp.asarray(bits, dtype=xp.float32)
    log_prob = xp.sum(on * log_on + (1.0 - on) * log_off, axis=-1)
    entropy = -xp.sum(xp.exp(log_on) * log_on + xp.exp(log_off) * log_off, axis=-1)
    kl = xp.sum(policy.bernoulli_kl(xp, log_on, log_off, walk.skip_target), axis=-1) if walk.with_skip_kl else 0.0
    mean = xp.matmul(on[:, None, :], hidden)[:, 0] / (1.0 + xp.sum(on, axis=-1, keepdims=True))
    return Outcome(bits, log_prob, entropy, mean, kl, decision.size)


def anchor_step(walk, decision, out, group, choose):
    """No choice: the step only records its hidden state (see `Walk.step`); the start token is read next.

    As after a node of the reference code's cells: the next decision starts
    afresh from the start token rather than from the last op's embedding.
    """
    return Outcome(None, walk.nothing(), walk.nothing(), walk.start)


STEPS = {CATEGORICAL: categorical_step, SKIP: skip_step, PICK: pick_step, ANCHOR: anchor_step}
