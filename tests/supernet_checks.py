"""Checks shared by the supernet tests of both spaces and a user's own."""

import keras
import numpy as np


def reset_momentum(net):
    """Zero momentum: a step then moves only the weights with a gradient."""
    for variable in net.optimizer.variables:
        if "momentum" in variable.path:
            variable.assign(np.zeros(variable.shape))


def assert_every_op_once_per_position(space, children):
    """`children` (one encoding per row) pick each op of `space.OPS` once at every op position."""
    assert children.shape == (len(space.OPS), space.encoding_length)
    for position in space.op_positions:
        assert sorted(children[:, position].tolist()) == list(range(len(space.OPS)))


def trainable_values(net):
    return [variable.numpy() for variable in net.model.trainable_variables]


def assert_fair_step_sums_its_childrens_steps(net, images, labels, children):
    """From zero momentum a step moves the weights linearly in the gradient, so
    one step on the summed gradients moves them by the sum of the single steps."""
    reset_momentum(net)
    state, start = net.get_state(), trainable_values(net)
    moves = []
    for child in children:
        net.set_state(state)
        net.train_step(images, labels, child)
        moves.append([after - before for after, before in zip(trainable_values(net), start)])
    net.set_state(state)
    result = net.fair_train_step(images, labels, children)
    assert np.isfinite(float(result["loss"])) and 0.0 <= float(result["accuracy"]) <= 1.0
    fair_moves = [after - before for after, before in zip(trainable_values(net), start)]
    assert any(np.any(move != 0) for move in fair_moves)
    for fair_move, *child_moves in zip(fair_moves, *moves):
        np.testing.assert_allclose(fair_move, np.sum(child_moves, axis=0), rtol=1e-4, atol=1e-6)


class WeightsAtStart(keras.callbacks.Callback):
    """Records the weights of every weighted layer when `fit` begins."""

    def on_train_begin(self, logs=None):
        self.weights = {layer.name: layer.get_weights() for layer in self.model.layers if layer.weights}


def assert_training_started_from(recorded, source):
    """Every weighted layer of `source` held its weights when the `WeightsAtStart` fit began."""
    weighted = [layer for layer in source.layers if layer.weights]
    assert weighted
    for layer in weighted:
        for started, trained in zip(recorded.weights[layer.name], layer.get_weights(), strict=True):
            np.testing.assert_array_equal(started, trained)
