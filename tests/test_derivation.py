"""The derivation of an ENAS epoch's child and the minibatch streams it draws from."""

import numpy as np
import pytest
import tensorflow as tf

from keras_rlnas.tuners.derivation import (
    concatenated,
    cycle,
    derive,
    every_example,
    fine_tuning_seconds,
    minibatches,
)


class ScoredByEncoding:
    """A stand-in supernet whose scores are known: one minibatch reads the first entry, more images the second."""

    def __init__(self):
        self.recalibrated, self.evaluated_on = [], []

    def eval_step(self, images, labels, arch):
        return float(arch[0])

    def evaluate(self, images, labels, arch, calibration_images=None):
        self.evaluated_on.append(len(images))
        return float(arch[1])

    def recalibrate(self, images, arch):
        self.recalibrated.append(tuple(arch))


def test_derive_rescores_the_best_of_one_minibatch_and_keeps_the_best_on_more_images():
    # One minibatch ranks (0.9, 0.8, 0.7, 0.1); on more images the second of them is best.
    candidates = iter([np.array(c) for c in [(0.8, 0.95), (0.1, 0.99), (0.9, 0.5), (0.7, 0.6)]])
    supernet = ScoredByEncoding()
    images, labels = np.zeros((40, 2, 2, 1)), np.arange(40) % 3
    score, encoding, finalists = derive(
        supernet, lambda: next(candidates), cycle((images, labels), 8, np.random.default_rng(0)), samples=4,
        finalists=3, calibration_images=images[:8], finalist_images=20,
    )
    assert [tuple(f) for f in finalists] == [(0.9, 0.5), (0.8, 0.95), (0.7, 0.6)]  # 0.1 never rescored
    assert (score, tuple(encoding)) == (0.95, (0.8, 0.95))
    assert supernet.evaluated_on == [24, 24, 24]  # whole minibatches until at least 20 images, the same for all
    assert supernet.recalibrated == [(0.8, 0.95)]  # the winner keeps its statistics


def test_cycle_draws_pass_after_pass_and_refuses_data_without_a_minibatch():
    x, y = np.arange(10).reshape(10, 1), np.arange(10)
    stream = cycle((x, y), 4, np.random.default_rng(0))
    drawn = [next(stream) for _ in range(6)]  # 2 minibatches per pass: 3 passes
    seen, _ = concatenated(drawn)
    assert len(seen) == 24 and set(seen.ravel()) <= set(range(10))
    assert len(list(minibatches((x, y), 4))) == 2 and len(list(minibatches((x[:3], y[:3]), 4))) == 1
    with pytest.raises(ValueError, match="no minibatch"):
        next(cycle((x[:0], y[:0]), 4, np.random.default_rng(0)))


def test_fine_tuning_seconds_grow_with_candidates_and_steps():
    one = fine_tuning_seconds(1, 100, 1e-3)
    assert one > 0 and fine_tuning_seconds(6, 100, 1e-3) == pytest.approx(6 * one)
    assert fine_tuning_seconds(6, 200, 1e-3) == pytest.approx(12 * one)


def test_every_example_keeps_the_images_a_whole_minibatch_would_leave_out():
    x, y = np.arange(200, dtype="float32").reshape(200, 1), np.arange(200) % 3
    images, labels = every_example((x, y), 128)
    assert len(images) == 200 and np.array_equal(labels, y)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(128)
    images, labels = every_example(dataset, 128)
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(labels, y)
