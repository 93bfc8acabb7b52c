"""Training to a wall-clock deadline: a plan that fills it, a schedule that ends with it, a stop at it.

`retrain(time_budget=...)` uses all three: `plan_within` times a probe copy
of the child and `fill_budget` turns its step time into epochs of a fitted
length; `CosineToDeadline` then anneals the learning rate on the clock (or
over the capped steps, when they end first), so the cosine reaches its
minimum at the deadline even when the probe's estimate is off (a probe of a
few steps misjudges an epoch by 15-20 % either way on a busy CPU);
`StopAtDeadline` ends training at the deadline. Both end a validation pass
before the budget's end, since `fit` scores the validation data once more
after it stops (a stop within the first epoch comes earlier still: that
pass is the model's first and traces its scoring step).

Example:

>>> import keras, numpy as np, time
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
>>> model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
>>> deadline = time.time() + 60
>>> schedule = CosineToDeadline(deadline, minimum=0.001, total_steps=4)
>>> history = model.fit(np.ones((8, 4)), np.zeros(8), batch_size=2, epochs=1, verbose=0,
...                     callbacks=[schedule, StopAtDeadline(deadline)])
>>> 0.001 < schedule.last_rate < 0.02  # the fourth step of four: close to the minimum
True
"""

import dataclasses
import math
import time

import keras


class StopAtDeadline(keras.callbacks.Callback):
    """Ends `fit` after the batch that passes a wall-clock deadline.

    Args:
        deadline: a `time.time()` value.
        first_epoch_deadline: the deadline until the first epoch ends, when
            it comes earlier: `fit`'s first validation pass traces the
            scoring step, so a stop within the first epoch needs more room
            for the pass that follows it (`None`: `deadline` throughout).
    """

    def __init__(self, deadline, first_epoch_deadline=None):
        super().__init__()
        self.deadline, self.first_epoch_deadline = deadline, first_epoch_deadline
        self.epochs_ended = 0

    def on_train_begin(self, logs=None):
        self.epochs_ended = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs_ended += 1

    def on_train_batch_end(self, batch, logs=None):
        deadline = self.deadline
        if self.epochs_ended == 0 and self.first_epoch_deadline is not None:
            deadline = min(deadline, self.first_epoch_deadline)
        if time.time() > deadline:
            self.model.stop_training = True


class CosineToDeadline(keras.callbacks.Callback):
    """Sets the learning rate before every step on one cosine cycle that ends at a deadline.

    The cycle's progress is the fraction of the time from `fit`'s start to
    `deadline` that has passed, or, with `total_steps`, the fraction of those
    steps done when that is further along, so that a run which reaches its
    last step before the deadline has annealed too. The optimizer needs a
    float learning rate (not a schedule): the callback assigns it.

    Args:
        deadline: a `time.time()` value.
        minimum: the learning rate at the deadline.
        peak: the learning rate at the start; the optimizer's when `None`.
        total_steps: the most steps the run will take, or `None`. Steps
            are counted at batch ends: one per call of the train function,
            so with `steps_per_execution > 1` give the count of calls.
        clock: a function returning the time (`time.time`).
    """

    def __init__(self, deadline, minimum=0.0, peak=None, total_steps=None, clock=time.time):
        super().__init__()
        self.deadline, self.minimum, self.given_peak = deadline, float(minimum), peak
        self.total_steps, self.clock = total_steps, clock
        self.peak = self.last_rate = None

    def on_train_begin(self, logs=None):
        self.began, self.steps = self.clock(), 0
        # Read at every start: a previous run left the optimizer at its minimum.
        self.peak = self.given_peak
        if self.peak is None:
            self.peak = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch, logs=None):
        progress = (self.clock() - self.began) / max(self.deadline - self.began, 1e-9)
        if self.total_steps:
            progress = max(progress, self.steps / self.total_steps)
        progress = min(max(progress, 0.0), 1.0)
        self.last_rate = self.minimum + 0.5 * (self.peak - self.minimum) * (1.0 + math.cos(math.pi * progress))
        self.model.optimizer.learning_rate = self.last_rate

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """How a child's training fills a budget, as a timed probe of it estimates.

    Attributes:
        epochs: epochs to train (see `fill_budget`).
        steps_per_epoch: steps in each of them.
        closing_seconds: one pass over the validation data, which `fit`
            scores once more after training stops: a stop at the deadline
            comes that long before it (0 without validation data).
        first_closing_seconds: the same for a stop within the first epoch,
            whose validation pass also traces the scoring step.
    """

    epochs: int
    steps_per_epoch: int
    closing_seconds: float = 0.0
    first_closing_seconds: float = 0.0


def plan_within(build, train, steps, validation_data, max_epochs, deadline, verbose=0):
    """The `TrainingPlan` of a child that fills the time to `deadline`, from a timed probe.

    Args:
        build: `build(epochs)`, a fresh compiled copy of the child.
        train: the training batches (`tf.data.Dataset`).
        steps: batches in one pass over the training data.
        validation_data: `(x, y)` arrays, a dataset, or `None`: scored after every epoch.
        max_epochs: the most epochs to train.
        deadline: a `time.time()` value.
        verbose: print the plan.

    Returns:
        A `TrainingPlan`.
    """
    start = time.time()
    next(iter(train))  # each epoch starts so: a shuffle buffer to fill before the first batch
    epoch_start_seconds = time.time() - start
    probe = build(max_epochs)
    probe_steps = min(steps, 20)
    # Cached, so the timed pass does not refill a shuffle buffer that a real epoch fills once.
    sample = train.take(probe_steps).cache()
    start = time.time()
    probe.fit(sample, epochs=1, shuffle=False, verbose=0)  # traces and fills the cache
    first_pass = time.time() - start
    clock = _StepClock()
    start = time.time()
    probe.fit(sample, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
    step_seconds = clock.step_seconds() or (time.time() - start) / probe_steps
    # The model that is trained for real traces again.
    setup_seconds = max(first_pass - step_seconds * probe_steps, 0.0)
    epoch_overhead, closing_seconds, first_closing_seconds = epoch_start_seconds, 0.0, 0.0
    if validation_data is not None:
        # Scored as `fit` scores it (its batch size, its conversion of arrays): the first pass also traces.
        clock = _StepClock()
        start = time.time()
        _evaluate_as_fit_does(probe, validation_data, callbacks=[clock])
        first_closing_seconds = time.time() - start
        validation_steps = len(clock.ends)
        batch_seconds = clock.step_seconds() or first_closing_seconds / max(validation_steps, 1)
        closing_seconds = min(batch_seconds * validation_steps, first_closing_seconds)
        setup_seconds += first_closing_seconds - closing_seconds  # the real model traces its scoring step too
        epoch_overhead += closing_seconds
    # 5% slack for the per-epoch overhead the probe does not see.
    available = (deadline - time.time()) * 0.95 - setup_seconds
    epochs, steps_per_epoch = fill_budget(available, epoch_overhead, step_seconds, steps, max_epochs)
    if verbose:
        print(
            f"retrain: about {epoch_overhead + step_seconds * steps:.0f} s per pass over the data; {epochs} epochs "
            f"of {steps_per_epoch} steps ({steps} per pass) fit the budget by this estimate",
            flush=True,
        )
    return TrainingPlan(epochs, steps_per_epoch, closing_seconds, first_closing_seconds)


def fill_budget(seconds, epoch_overhead, step_seconds, steps, max_epochs):
    """The epochs, and steps per epoch, of a training that fills `seconds`.

    The epoch count is the number of passes over the data that fit, rounded
    to the nearest whole number (at least 1, at most `max_epochs`); the
    epochs' length then takes up the rest, so that no fraction of an epoch
    is left unused. Capped at `max_epochs`, the epochs stay one pass long.

    Args:
        seconds: time for the whole training.
        epoch_overhead: seconds each epoch costs beside its steps (validation, refilling a shuffle buffer).
        step_seconds: seconds per training step.
        steps: steps in one pass over the data.
        max_epochs: the most epochs to train.

    Returns:
        `(epochs, steps_per_epoch)`.

    Example:

    >>> fill_budget(1000, epoch_overhead=10, step_seconds=1.0, steps=100, max_epochs=50)
    (9, 101)
    >>> fill_budget(1000, epoch_overhead=10, step_seconds=1.0, steps=100, max_epochs=5)
    (5, 100)
    """
    passes = seconds / (epoch_overhead + step_seconds * steps)
    if passes >= max_epochs:
        return max_epochs, steps
    epochs = max(int(round(passes)), 1)
    return epochs, max(int((seconds - epochs * epoch_overhead) / (epochs * step_seconds)), 1)


class _StepClock(keras.callbacks.Callback):
    """Times the training or scoring steps of one pass between batch ends.

    A small child's step takes milliseconds; timing the whole `fit` call
    would add its fixed start-up cost to every step of the probe and fit
    too few epochs into the budget.
    """

    def __init__(self):
        super().__init__()
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())

    on_test_batch_end = on_train_batch_end

    def step_seconds(self):
        """Seconds per step, or `None` from fewer than two steps."""
        if len(self.ends) < 2:
            return None
        return (self.ends[-1] - self.ends[0]) / (len(self.ends) - 1)


def _evaluate_as_fit_does(model, validation_data, callbacks):
    """One pass of `model.evaluate` over `fit`'s `validation_data` (a dataset or an `(x, y[, weights])` tuple)."""
    if isinstance(validation_data, (tuple, list)):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(tuple(validation_data))
        return model.evaluate(x, y, sample_weight=sample_weight, verbose=0, callbacks=callbacks)
    return model.evaluate(validation_data, verbose=0, callbacks=callbacks)


__all__ = ["CosineToDeadline", "StopAtDeadline", "TrainingPlan", "fill_budget", "plan_within"]
