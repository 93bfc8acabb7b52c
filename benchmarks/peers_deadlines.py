"""The callbacks that hold benchmarks/peers.py's deadlines: a Keras Tuner search's and an ENAS search's.

Built by `deadline_callbacks()` so that importing this module does not
import Keras (peers.py's `--table` and `--plot` run without it).
"""

import time

import numpy as np


def deadline_callbacks():
    """`(StopAtDeadline, CosineToDeadline, SearchDeadline, ENASClock)`, defined once Keras is imported."""
    import keras

    from keras_rlnas.time_budget import CosineToDeadline, StopAtDeadline

    class SearchDeadline(keras.callbacks.Callback):
        """Stops a Keras Tuner search at `deadline`: ends the running trial and lets the oracle start no other.

        Keras Tuner deep-copies the callbacks of every trial; this one stays
        itself, so it keeps its oracle and what it noted.
        """

        def __init__(self, oracle, deadline):
            super().__init__()
            self.oracle, self.deadline, self.stopped_at = oracle, deadline, None

        def __deepcopy__(self, memo):
            return self

        def on_train_batch_end(self, batch, logs=None):
            if time.time() > self.deadline:
                self.model.stop_training = True
                if self.stopped_at is None:
                    self.stopped_at = time.time()
                    self.oracle.max_trials = max(1, len(self.oracle.trials))

    class ENASClock(keras.callbacks.Callback):
        """Keeps an `ENASTuner.search` inside its deadline.

        `dataset()` is the omega phase's training data: each epoch a fresh
        seeded subset of `epoch_images` training images in minibatches, cut
        short when the time left would no longer hold the epoch's "tail",
        its controller and derivation phases. The tail is timed on the
        previous epoch; before the first one it is estimated from the omega
        phase's own speed: the tail's forward passes (`tail_images`: reward,
        derivation and finalist images) at half the cost of a training
        image (measured: 168 s for the 43,520 images of the macro defaults
        at 7.7 ms per training image), the cost timed from the fourth
        minibatch on so that graph tracing does not count. As a callback, it ends the search
        after an epoch when the next one would not fit a quarter of a full
        omega phase plus its tail. Both keep time for the fine-tuning of the
        finalists when the search ends (`final_images` training images, at
        the omega phase's cost per image).
        """

        #: A tail image costs about this fraction of a training image (first epoch only).
        FORWARD_COST = 0.5
        #: A fine-tuning image (minibatch 128) costs about this fraction of an omega-phase one (minibatch 32):
        #: 0.70 ms against 1.4 ms per image on the 6 x 16 macro supernet (benchmarks/enas_ranking.py).
        FINE_TUNE_COST = 0.5
        #: Minibatches not timed for the first epoch's estimate (graph tracing).
        WARMUP_BATCHES = 3

        def __init__(self, x, y, batch_size, epoch_images, tail_images, deadline, seed, final_images=0):
            super().__init__()
            self.final_images, self.per_image = final_images, None
            self.search_over = False  # then the finalists' fine-tuning draws whole, untimed minibatches
            self.x, self.y, self.batch_size = x, y, batch_size
            self.epoch_images = min(epoch_images, len(x))
            self.tail_images, self.deadline = tail_images, deadline
            self.rng = np.random.default_rng(seed)
            self.tail = None
            self.full_omega = None
            self.omega_began = self.omega_ended = self.first_omega_began = None
            self.images = 0
            self.cut_epochs = 0
            self.epochs = []  # Per epoch: omega-phase seconds and images, tail seconds.

        def dataset(self):
            import tensorflow as tf

            signature = (
                tf.TensorSpec((None, *self.x.shape[1:]), tf.float32),
                tf.TensorSpec((None,), tf.int32),
            )
            return tf.data.Dataset.from_generator(self._batches, output_signature=signature)

        def _reserve(self, seen, warm_since):
            """Seconds to keep for the tail, or `None` while the first epoch cannot tell yet."""
            if self.tail is not None:
                return 1.2 * self.tail + self.per_image * self.FINE_TUNE_COST * self.final_images
            warm_images = seen - self.WARMUP_BATCHES * self.batch_size
            if warm_since is None or warm_images < self.batch_size:
                return None
            per_image = (time.time() - warm_since) / warm_images
            return per_image * (self.FORWARD_COST * self.tail_images + self.FINE_TUNE_COST * self.final_images)

        def _batches(self):
            if self.search_over:
                order = self.rng.permutation(len(self.x))
                for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
                    yield self.x[order[start : start + self.batch_size]], self.y[order[start : start + self.batch_size]]
                return
            self.omega_began = time.time()
            order = self.rng.permutation(len(self.x))[: self.epoch_images]
            seen, warm_since = 0, None
            try:
                for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
                    if seen == self.WARMUP_BATCHES * self.batch_size:
                        warm_since = time.time()
                    reserve = self._reserve(seen, warm_since)
                    if reserve is not None and time.time() > self.deadline - reserve:
                        self.cut_epochs += 1
                        break
                    index = order[start : start + self.batch_size]
                    seen += len(index)
                    yield self.x[index], self.y[index]
            finally:
                self.omega_ended, self.images = time.time(), seen
                if seen:
                    self.full_omega = (self.omega_ended - self.omega_began) * self.epoch_images / seen
                    warm_images = seen - self.WARMUP_BATCHES * self.batch_size
                    if warm_since is not None and warm_images > 0:  # without the first epoch's tracing
                        self.per_image = (self.omega_ended - warm_since) / warm_images
                    else:
                        self.per_image = self.full_omega / self.epoch_images

        def on_epoch_end(self, epoch, logs=None):
            now = time.time()
            self.tail = now - self.omega_ended
            if not self.epochs:
                self.first_omega_began = self.omega_began
            self.epochs.append({"omega_seconds": round(self.omega_ended - self.omega_began, 1),
                                "omega_images": self.images, "tail_seconds": round(self.tail, 1)})
            needed = (1.2 * self.tail + 0.25 * (self.full_omega or 0.0)
                      + (self.per_image or 0.0) * self.FINE_TUNE_COST * self.final_images)
            if self.deadline - now < needed:
                self.model.stop_training = self.search_over = True

    return StopAtDeadline, CosineToDeadline, SearchDeadline, ENASClock
