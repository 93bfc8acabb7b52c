"""The last word of an ENAS search: its finalists compared on more than the shared weights.

Each ENAS epoch keeps the child that scores best on the shared weights, a
score biased towards the children those weights suit. When the search ends,
`ENASTuner` can look again at the last derivation's finalists and the best
child so far, each given training of its own, and record the best of them as
its last trial:

- `fine_tune_steps`: each finalist trains a few SGD steps on from the shared
  weights (`keras_rlnas.supernet.fine_tuning`);
- `finalist_epochs`: each finalist trains alone from a random initialisation
  for a few epochs, as DARTS chooses among the cells of its runs by a short
  training from scratch (Liu et al., 2019, section 3.3). No shared weight
  enters the choice; it costs about half an omega phase per finalist epoch.
  `uniform_finalists` adds architectures drawn uniformly from the space to
  these candidates, so that the choice is not confined to the children the
  shared weights favour.

Both score every validation image and record the winner, holding the
weights it was scored with, as the trial `get_best_trials` ranks first.
`FinalChoice` holds the stage for `ENASTuner`.
"""

import itertools
import time

import numpy as np

from keras_rlnas.supernet.fine_tuning import FINE_TUNE_BATCH_SIZE, weights_restored
from keras_rlnas.tuners import derivation, search_inputs
from keras_rlnas.tuners.derivation import cycle, minibatches

# Training minibatches kept from each omega phase for BN recalibration of derived children.
CALIBRATION_BATCHES = 4


def accuracy_of(model, images, labels, batch_size=256):
    """The share of `images` whose most probable class under `model` is the label."""
    predictions = np.asarray(model.predict(images, batch_size=batch_size, verbose=0))
    return float(np.mean(np.argmax(predictions, axis=-1) == np.asarray(labels).reshape(-1)))


def fine_tuning_batches(train, steps, seed):
    """A function that returns, each time it is called, the same fine-tuning minibatches of `train`.

    One data order for every candidate, so only the architectures differ.
    Minibatches of `FINE_TUNE_BATCH_SIZE` images whatever the search's: arrays
    are shuffled with `seed` (or kept in order when the search keeps them so);
    a dataset is rebatched, and its first `steps` minibatches are kept, since
    a dataset may reshuffle on every pass.

    Args:
        train: the search's training data: `(x, y)` arrays, `OrderedBatches` or a batched dataset.
        steps: minibatches per candidate.
        seed: seed of the arrays' order.

    Returns:
        A function of no argument returning an endless iterator of `(images, labels)`.
    """
    if isinstance(train, tuple):
        return lambda: cycle(train, FINE_TUNE_BATCH_SIZE, np.random.default_rng(seed))
    if isinstance(train, search_inputs.OrderedBatches):
        ordered = search_inputs.OrderedBatches(train.arrays, FINE_TUNE_BATCH_SIZE)
        return lambda: cycle(ordered, FINE_TUNE_BATCH_SIZE, None)
    kept = list(itertools.islice(cycle(train.unbatch().batch(FINE_TUNE_BATCH_SIZE), FINE_TUNE_BATCH_SIZE, None), steps))
    return lambda: itertools.cycle(kept)


class FinalChoice:
    """The `fine_tune_steps` / `finalist_epochs` stage of `ENASTuner` (see the module's docstring).

    Reads the tuner's `supernet`, `space`, `oracle`, `rng`, `_finalists`,
    `_calibration_images`, `history` and options, and records through
    `_record_trial`.
    """

    def _final_choice_due(self):
        """Whether the search should end with the stage: asked for, and not yet run on this epoch's weights."""
        done = self.fine_tuned if self.fine_tune_steps else self.trained_finalists
        return (self.fine_tune_steps or self.finalist_epochs) and self.epochs_done and (done or {}).get(
            "epoch") != self.epochs_done

    def _final_choice(self, inputs, train):
        if self.fine_tune_steps:
            self._record_fine_tuned(train, inputs.validation)
        else:
            self._record_trained_finalists(inputs.train, inputs.validation)

    def _final_choice_seconds(self):
        """About how long the stage takes, from the last omega phase's speed."""
        if not self.history or not (self.fine_tune_steps or self.finalist_epochs):
            return 0.0
        last = self.history[-1]
        candidates = self.derive_finalists + 1 + self.uniform_finalists
        if self.fine_tune_steps:
            per_image = last.get("omega_seconds_per_image", 0.0)
            return derivation.fine_tuning_seconds(candidates, self.fine_tune_steps, per_image)
        # An epoch alone at minibatch 128 costs about half an omega pass at 32; building each child is left out.
        omega_pass = last.get("omega_seconds", 0.0)
        return derivation.FINE_TUNE_COST_PER_OMEGA_IMAGE * candidates * self.finalist_epochs * omega_pass

    def _finalist_candidates(self, uniform=0):
        """The last derivation's finalists, the best child recorded so far and `uniform` random ones, once each.

        Returns `(candidates, sources)`: the encodings, and for each
        `"derived"`, `"best"` or `"uniform"` (drawn uniformly from the space).
        """
        candidates, sources = [], []

        def add(encoding, source):
            if any(np.array_equal(encoding, candidate) for candidate in candidates):
                return False
            candidates.append(encoding)
            sources.append(source)
            return True

        for encoding in self._finalists:
            add(encoding, "derived")
        add(self.space.encode(self.oracle.get_best_trials(1)[0].hyperparameters.values), "best")
        added = 0
        # A few redraws make up for duplicates; a space smaller than the count gives what it has.
        for _ in range(10 * uniform):
            if added == uniform:
                break
            added += add(self.space.random_encoding(int(self.rng.integers(2**31))), "uniform")
        return candidates, sources

    def _record_fine_tuned(self, train, validation):
        """Records, as the last trial, the best finalist after each trains alone from the shared weights.

        Each candidate is fine-tuned for `fine_tune_steps` steps, recalibrated
        and scored on every validation image (the finalists' 1,024 images
        cannot tell apart children this close).
        """
        start = time.time()
        if self._calibration_images is None:  # a resumed search that ran no epoch
            batches = itertools.islice(minibatches(train, self.batch_size, self.rng), CALIBRATION_BATCHES)
            self._calibration_images, _ = derivation.concatenated(batches)
        candidates, _ = self._finalist_candidates()
        order = int(self.rng.integers(2**31))
        index, scores, state = derivation.fine_tuned_choice(
            self.supernet, candidates, fine_tuning_batches(train, self.fine_tune_steps, order),
            validation, self.fine_tune_steps, self._calibration_images, self.validation_batch_size,
        )
        with weights_restored(self.supernet):  # the search goes on from the epoch's weights
            self.supernet.set_state(state)
            self.supernet.recalibrate(self._calibration_images, candidates[index])
            self._record_trial(self.space.decode(candidates[index]), scores[index], final=True, began=start)
        self.fine_tuned = {"epoch": self.epochs_done, "scores": scores, "seconds": time.time() - start}
        self._save_state()
        self._report_final_choice("fine-tuned", len(candidates), f"{self.fine_tune_steps} steps", scores[index], start)

    def _record_trained_finalists(self, train, validation):
        """Records, as the last trial, the best finalist after each trains alone from scratch.

        Each candidate is built afresh and trained `finalist_epochs` epochs on
        the training data with `retrain()`'s recipe (one cosine cycle, the
        search's width, no drop-path or auxiliary head), with the search's
        seed, and scored on every validation image. `uniform_finalists`
        architectures drawn uniformly join the candidates.
        """
        start = time.time()
        x, y = train if isinstance(train, tuple) else (train, None)
        images, labels = derivation.every_example(validation, self.validation_batch_size)
        (candidates, sources), scores, best_model = self._finalist_candidates(self.uniform_finalists), [], None
        for encoding in candidates:
            model = self.retrain(self.space.decode(encoding), x, y, epochs=self.finalist_epochs,
                                 drop_path=0, auxiliary_weight=0)
            scores.append(accuracy_of(model, images, labels))
            if best_model is None or scores[-1] > max(scores[:-1]):
                best_model = model
        index = int(np.argmax(scores))
        self._record_trial(
            self.space.decode(candidates[index]), scores[index], model=best_model, final=True, began=start
        )
        self.trained_finalists = {
            "epoch": self.epochs_done, "scores": scores, "sources": sources, "seconds": time.time() - start,
            "architectures": [self.space.decode(encoding) for encoding in candidates],
        }
        self._save_state()
        self._report_final_choice("trained", len(candidates), f"{self.finalist_epochs} epochs", scores[index], start)

    def _report_final_choice(self, how, count, length, best, start):
        if self.verbose:
            print(f"{how} {count} finalists for {length} each: best {best:.4f} ({time.time() - start:.0f} s)",
                  flush=True)


__all__ = ["CALIBRATION_BATCHES", "FinalChoice", "accuracy_of"]
