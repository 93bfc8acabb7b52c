"""The controller's policy math, written once for NumPy and for TensorFlow.

Sampling one architecture is a chain of tiny matrix products: NumPy runs it in
microseconds, where a TensorFlow op dispatch alone costs more. The REINFORCE
update needs gradients over a batch of architectures: TensorFlow computes it
in one compiled graph. Both call the functions below with their own array
module (`numpy` or `tensorflow.experimental.numpy`), so the two paths cannot
drift apart.
"""

import numpy as np


def sigmoid(xp, x):
    return 1.0 / (1.0 + xp.exp(-x))


def log_sigmoid(xp, x):
    # log(sigmoid(x)) = -softplus(-x), written to stay finite for large |x|.
    return -(xp.maximum(-x, 0.0) + xp.log1p(xp.exp(-xp.abs(x))))


def log_softmax(xp, logits):
    shifted = logits - xp.max(logits, axis=-1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))


def lstm_step(xp, layers, inputs, state):
    """One step of a stacked LSTM.

    Args:
        xp: `numpy` or `tensorflow.experimental.numpy`.
        layers: list of `(kernel, bias)`; kernel is `[input + units, 4 * units]`.
        inputs: `[batch, units]`.
        state: list of `(h, c)` per layer, each `[batch, units]`.

    Returns:
        `(output, new_state)`: the top layer's `h` and the new state.
    """
    new_state = []
    for (kernel, bias), (h, c) in zip(layers, state):
        z = xp.matmul(xp.concatenate([inputs, h], axis=1), kernel) + bias
        units = h.shape[-1]
        # One sigmoid over all four gates (g's quarter unused) costs less than three calls.
        gates = sigmoid(xp, z)
        g = xp.tanh(z[:, 2 * units : 3 * units])
        c = gates[:, units : 2 * units] * c + gates[:, :units] * g
        h = gates[:, 3 * units :] * xp.tanh(c)
        new_state.append((h, c))
        inputs = h
    return inputs, new_state


def shape_logits(xp, logits, temperature, tanh_constant):
    """Temperature, then `c * tanh` squashing (Bello et al., used by ENAS)."""
    if temperature:
        logits = logits / temperature
    if tanh_constant:
        logits = tanh_constant * xp.tanh(logits)
    return logits


def attention_scores(xp, projected_anchors, query, w_curr, v):
    """`v^T tanh(W_prev h_j + W_curr h)` for every earlier anchor `j`.

    Args:
        projected_anchors: `[batch, n, units]`, the anchors times `W_prev`.
        query: `[batch, units]`, the current hidden state.
        w_curr: `[units, units]`.
        v: `[units]`.

    Returns:
        `[batch, n]` scores.
    """
    hidden = xp.tanh(projected_anchors + xp.matmul(query, w_curr)[:, None, :])
    return xp.sum(hidden * v, axis=-1)


def categorical_entropy(xp, log_probs):
    return -xp.sum(xp.exp(log_probs) * log_probs, axis=-1)


def bernoulli_log_probs(xp, scores):
    """`(log p, log (1 - p))` of Bernoullis with logit `scores`."""
    return log_sigmoid(xp, scores), log_sigmoid(xp, -scores)


def bernoulli_kl(xp, log_p, log_q, target):
    """KL(Bernoulli(p) || Bernoulli(target)), from `log p` and `log (1 - p)`."""
    p, q = xp.exp(log_p), xp.exp(log_q)
    return p * (log_p - np.log(target)) + q * (log_q - np.log(1.0 - target))
