"""Deriving the child an ENAS epoch keeps, and the fine-tuned choice when a search ends.

After each epoch ENAS samples architectures from its policy and keeps the one
that scores best on the shared weights (Pham et al., 2018, section 2.2). One
validation minibatch per candidate, as in the reference code, is a noisy
score, so `derive` scores the best few again on more images with their own
recalibrated batch-norm statistics. `fine_tuned_choice` goes further for the
search's last word: each finalist trains alone for a few steps from the
shared weights before it is scored (`keras_rlnas.supernet.fine_tuning`).

Example:

>>> import numpy as np
>>> from keras_rlnas.spaces import ENASMacro
>>> from keras_rlnas.supernet import MacroSupernet
>>> space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4)
>>> net = MacroSupernet(space)
>>> x, y = np.random.rand(64, 8, 8, 1).astype("float32"), np.arange(64) % 3
>>> rng = np.random.default_rng(0)
>>> sample = lambda: space.random_encoding(int(rng.integers(2**31)))
>>> score, encoding, finalists = derive(net, sample, cycle((x, y), 16, rng), 4, 2, x[:16], finalist_images=32)
>>> len(finalists), 0.0 <= score <= 1.0
(2, True)
"""

import itertools

import numpy as np

from keras_rlnas.supernet.fine_tuning import FINE_TUNE_BATCH_SIZE, best_fine_tuned

# Validation images on which the derivation's finalists are compared.
FINALIST_IMAGES = 1024
# An image in fine-tuning minibatches of 128 costs about half of one in the omega phase's 32.
FINE_TUNE_COST_PER_OMEGA_IMAGE = 0.5


def minibatches(data, batch_size, rng=None):
    """Minibatches of `(x, y)` arrays (shuffled when `rng` is given) or of a batched `tf.data.Dataset`."""
    if hasattr(data, "as_numpy_iterator"):
        yield from data.as_numpy_iterator()
        return
    x, y = data
    order = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
    # Arrays shorter than one minibatch give one short minibatch; empty ones give none.
    for start in range(0, max(len(x) - batch_size + 1, min(len(x), 1)), batch_size):
        index = order[start : start + batch_size]
        yield x[index], y[index]


def cycle(data, batch_size, rng):
    """Minibatches of `data`, pass after pass, each pass's order drawn from `rng` (a `ResumableCycle`)."""
    return ResumableCycle(data, batch_size, rng)


class ResumableCycle:
    """Minibatches of `data`, pass after pass, in an order a saved state continues exactly.

    Each pass's order is drawn from the generator when the pass begins; the
    stream remembers the generator's state at that moment and how many
    minibatches of the pass it has served, so one restored from `state()`
    serves the minibatches the saved one would have served next.

    Args:
        data: `(x, y)` arrays (shuffled each pass) or a batched `tf.data.Dataset`.
        batch_size: images per minibatch of the arrays.
        seed: the generator's seed, or a `np.random.Generator` to draw from.

    Example:

    >>> x, y = np.arange(10)[:, None], np.arange(10)
    >>> stream = ResumableCycle((x, y), 4, seed=0)
    >>> _ = next(stream); saved = stream.state()
    >>> later = [next(stream)[1].tolist() for _ in range(3)]
    >>> resumed = ResumableCycle((x, y), 4, seed=1)
    >>> resumed.restore(saved)
    >>> [next(resumed)[1].tolist() for _ in range(3)] == later
    True
    """

    def __init__(self, data, batch_size, seed):
        self.data = data
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self._pass_start = None  # the generator's state when the current pass began
        self._drawn = 0
        self._batches = None

    def __iter__(self):
        return self

    def __next__(self):
        if self._batches is None:
            if self._pass_start is None:
                self._pass_start = self.rng.bit_generator.state
            else:  # restored: the saved pass again, from where it was
                self.rng.bit_generator.state = self._pass_start
            self._batches = minibatches(self.data, self.batch_size, self.rng)
            if sum(1 for _ in itertools.islice(self._batches, self._drawn)) < self._drawn:
                self._end_pass()  # shorter data or larger minibatches than when saved
                return next(self)
        batch = next(self._batches, None)
        if batch is None:
            if not self._drawn:
                raise ValueError("The data holds no minibatch: there is nothing to draw from.")
            self._end_pass()
            return next(self)
        self._drawn += 1
        return batch

    def _end_pass(self):
        self._pass_start, self._drawn, self._batches = None, 0, None

    def state(self):
        """Where the stream is: a JSON-able dict for `restore`."""
        start = self.rng.bit_generator.state if self._pass_start is None else self._pass_start
        return {"pass_start": start, "drawn": self._drawn}

    def restore(self, state):
        """Continues from a `state()`, of this stream or of one over the same data."""
        self._pass_start, self._drawn, self._batches = state["pass_start"], int(state["drawn"]), None


def concatenated(batches):
    """`(images, labels)` of a sequence of minibatches, each joined into one array."""
    batches = list(batches)
    return np.concatenate([images for images, _ in batches]), np.concatenate([labels for _, labels in batches])


def every_example(data, batch_size):
    """`(images, labels)` of all of `data`: `(x, y)` arrays as they are, a batched dataset joined."""
    if isinstance(data, tuple):
        return np.asarray(data[0]), np.asarray(data[1])
    return concatenated(minibatches(data, batch_size))


def derive(supernet, sample, validation_batches, samples, finalists, calibration_images,
           finalist_images=FINALIST_IMAGES):
    """The best of `samples` sampled architectures on the shared weights.

    Every candidate is scored on one validation minibatch; the `finalists`
    best are scored again on the same `finalist_images` validation images
    with their own batch-norm statistics, recalibrated on
    `calibration_images`. The winner's statistics stay in the supernet, so
    the child built from it next predicts as it was scored.

    Args:
        supernet: a `Supernet`.
        sample: a function of no argument returning an architecture's encoding.
        validation_batches: an endless iterator of validation minibatches (`cycle`).
        samples, finalists: candidates, and how many of them are scored again.
        calibration_images: training images for the recalibration.
        finalist_images: validation images of the second scoring.

    Returns:
        `(score, encoding, finalist encodings)`.
    """
    candidates = []
    for _ in range(samples):
        images, labels = next(validation_batches)
        encoding = sample()
        candidates.append((float(supernet.eval_step(images, labels, encoding)), encoding))
    candidates.sort(key=lambda candidate: -candidate[0])
    scoring = []
    while sum(len(labels) for _, labels in scoring) < finalist_images:
        scoring.append(next(validation_batches))
    images, labels = concatenated(scoring)
    scored = [
        (supernet.evaluate(images, labels, encoding, calibration_images=calibration_images), encoding)
        for _, encoding in candidates[:finalists]
    ]
    score, encoding = max(scored, key=lambda finalist: finalist[0])
    supernet.recalibrate(calibration_images, encoding)
    return score, encoding, [encoding for _, encoding in scored]


def fine_tuned_choice(supernet, candidates, training_batches, validation, steps, calibration_images,
                      validation_batch_size=128):
    """The candidate that scores best on every validation image after its own fine-tuning.

    Args:
        supernet: a `Supernet`, left as it was.
        candidates: architectures (encodings), at least one.
        training_batches: a function of no argument returning an endless
            iterator of training minibatches, called afresh for each candidate
            (`best_fine_tuned`).
        validation: `(x, y)` arrays or a batched dataset; all of it is scored.
        steps: fine-tuning steps per candidate.
        calibration_images: training images for BN recalibration before scoring.
        validation_batch_size: minibatch size over validation arrays.

    Returns:
        `(index, scores, state)` as `best_fine_tuned`.
    """
    images, labels = every_example(validation, validation_batch_size)
    return best_fine_tuned(
        supernet, candidates, training_batches, images, labels, steps=steps, calibration_images=calibration_images
    )


def fine_tuning_seconds(candidates, steps, omega_seconds_per_image):
    """About how long `fine_tuned_choice` takes, from the omega phase's time per image."""
    return FINE_TUNE_COST_PER_OMEGA_IMAGE * candidates * steps * FINE_TUNE_BATCH_SIZE * omega_seconds_per_image


__all__ = [
    "FINALIST_IMAGES", "ResumableCycle", "concatenated", "cycle", "derive", "every_example", "fine_tuned_choice",
    "fine_tuning_seconds", "minibatches",
]
