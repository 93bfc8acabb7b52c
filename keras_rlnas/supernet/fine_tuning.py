"""Scoring a child after a short training of its own from the shared weights.

A child's score on the shared weights mixes what the child is worth with
how well the weights it inherits happen to suit it: the shared weights are
trained for every child at once, and some children (in the macro space,
those with max-pools or few convolutions) inherit weights that fit them
worse than others. A hundred SGD steps of the child alone, from the shared
weights, weaken that bias: on 24 macro children that span the space, the
Kendall tau of the score with a child's conv count falls from +0.76 to
+0.29 (+0.12 for standalone training), and its tau against standalone
training rose from +0.21 to +0.35 on one supernet and from +0.10 to +0.13 on
another (`benchmarks/enas_ranking.py`), gains within the noise of 24
children. The shared weights and the optimizer's state are restored
afterwards, so fine-tuned scores leave the search where it was.

Example:

>>> import numpy as np
>>> from keras_rlnas.spaces import ENASMacro
>>> from keras_rlnas.supernet import MacroSupernet
>>> space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4)
>>> net = MacroSupernet(space)
>>> x, y = np.random.rand(8, 8, 8, 1), np.arange(8) % 3
>>> before = [np.array(v) for v in net.model.variables]
>>> batches = iter([(x[:4], y[:4]), (x[4:], y[4:])] * 5)
>>> score = fine_tuned_accuracy(net, space.random_encoding(0), batches, x, y, steps=10)
>>> 0.0 <= score <= 1.0
True
>>> all(np.array_equal(a, np.array(b)) for a, b in zip(before, net.model.variables))
True
"""

import contextlib

import numpy as np

from keras_rlnas import _checks as checks

# Steps, minibatch and learning rate of the fine-tuning (enas_ranking.py's setting).
FINE_TUNE_STEPS = 100
FINE_TUNE_BATCH_SIZE = 128
FINE_TUNE_LEARNING_RATE = 0.05


@contextlib.contextmanager
def weights_restored(supernet):
    """Context after which the supernet's weights, optimizer state and epoch are as before."""
    state = supernet.get_state()
    try:
        yield supernet
    finally:
        supernet.set_state(state)


def fine_tune(supernet, arch, training_batches, steps=FINE_TUNE_STEPS, learning_rate=FINE_TUNE_LEARNING_RATE):
    """Trains the shared weights of child `arch` alone for `steps` SGD steps, in place.

    Args:
        supernet: a `Supernet` (macro, micro or a custom space's).
        arch: the child's architecture, as for `Supernet.train_step`.
        training_batches: an iterator of `(images, labels)` training minibatches;
            `steps` of them are drawn.
        steps: training steps (0 leaves the weights as they are).
        learning_rate: constant learning rate of those steps (the schedule's peak);
            an optimizer given with its own `LearningRateSchedule` follows it instead.

    Returns:
        Whether the training loss stayed finite.
    """
    steps = checks.positive_int("steps", steps, minimum=0)
    supernet.set_learning_rate(checks.positive_float("learning_rate", learning_rate))
    result = None
    for step in range(steps):
        try:
            images, labels = next(training_batches)
        except StopIteration:
            raise ValueError(f"`training_batches` ran out after {step} of steps={steps} minibatches.") from None
        result = supernet.train_step(images, labels, arch)
    # A NaN loss stays NaN, so the last step tells.
    return result is None or bool(np.isfinite(float(result["loss"])))


def fine_tuned_accuracy(
    supernet,
    arch,
    training_batches,
    images,
    labels,
    steps=FINE_TUNE_STEPS,
    learning_rate=FINE_TUNE_LEARNING_RATE,
    calibration_images=None,
    return_state=False,
):
    """Accuracy of child `arch` after `steps` SGD steps of its own from the shared weights.

    The supernet is left as it was (`weights_restored`).

    Args:
        supernet, arch, training_batches, steps, learning_rate: as for `fine_tune`.
        images, labels: the scoring examples.
        calibration_images: training images for BN recalibration before
            scoring (`Supernet.evaluate`); `None` scores with batch statistics.
        return_state: also return the fine-tuned `supernet.get_state()`.

    Returns:
        The accuracy, a Python float (0.0 for a child whose training
        diverged); with `return_state`, `(accuracy, state)`.
    """
    with weights_restored(supernet):
        finite = fine_tune(supernet, arch, training_batches, steps, learning_rate)
        score = supernet.evaluate(images, labels, arch, calibration_images=calibration_images) if finite else 0.0
        return (score, supernet.get_state()) if return_state else score


def best_fine_tuned(supernet, candidates, training_batches, *scoring, **options):
    """The candidate that scores best after fine-tuning, and the weights it was scored with.

    Each candidate is fine-tuned from the same shared weights and scored
    (`fine_tuned_accuracy`); the supernet is left as it was.

    Args:
        supernet: a `Supernet`.
        candidates: architectures (encodings), at least one.
        training_batches: a function of no argument returning an iterator of
            training minibatches, called afresh for each candidate: one that
            gives the same minibatches each time (a seeded order) trains every
            candidate on the same images, so that only the architectures differ.
        *scoring, **options: `fine_tuned_accuracy`'s arguments after
            `training_batches`.

    Returns:
        `(index, scores, state)`: the winner's index in `candidates`, every
        candidate's score, and the winner's fine-tuned `supernet.get_state()`.
    """
    if not len(candidates):
        raise ValueError("`candidates` is empty: there is no architecture to fine-tune.")
    scores, best_state = [], None
    for arch in candidates:
        score, state = fine_tuned_accuracy(supernet, arch, training_batches(), *scoring, return_state=True, **options)
        if best_state is None or score > max(scores):
            best_state = state
        scores.append(score)
    return int(np.argmax(scores)), scores, best_state
