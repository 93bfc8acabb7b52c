"""Watching a running search: a progress line with ETA, TensorBoard summaries, a wall-time budget."""

import logging
import sys
import time

import keras

from keras_rlnas.reporting.tensorboard import ControllerSummaries

logger = logging.getLogger(__name__)


def format_seconds(seconds):
    """`h:mm:ss` or `m:ss`.

    Example:

    >>> format_seconds(75), format_seconds(3725)
    ('1:15', '1:02:05')
    """
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressLine:
    """A progress bar with elapsed time and ETA, on one line of a stream.

    On a terminal the line is redrawn in place; otherwise (a log file, a pipe)
    only `update(..., force=True)` calls print, one line each.

    Args:
        total: units of work expected, or `None` when unknown (a time budget).
        unit: name of a unit, e.g. `"epochs"`.
        time_limit: seconds the work may take, or `None`; caps the ETA.
        stream: where to write (default `sys.stderr`).
        label: first word of the line.
        width: characters of the bar.

    Example:

    >>> import io
    >>> progress = ProgressLine(total=4, unit="epochs", stream=io.StringIO())
    >>> progress.render(2).split()[1:3]
    ['[##########----------]', '2/4']
    >>> on_the_clock = ProgressLine(total=20, unit="epochs", time_limit=600.0, stream=io.StringIO())
    >>> on_the_clock.start -= 450.0  # three quarters of the budget spent
    >>> " ".join(on_the_clock.render(8).split()[1:8])
    '[###############-----] 8 of at most 20 epochs'
    """

    def __init__(self, total=None, unit="steps", time_limit=None, stream=None, label="search", width=20):
        self.total = total
        self.unit = unit
        self.time_limit = time_limit
        self.stream = stream if stream is not None else sys.stderr
        self.label = label
        self.width = width
        self.start = time.monotonic()
        self.done = 0
        self.note = ""
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._drawn = False

    def eta(self, done):
        """Seconds left: by the rate so far, capped by the time budget; `None` when unknown."""
        elapsed = time.monotonic() - self.start
        estimates = []
        if self.total is not None and done > 0:
            estimates.append(elapsed / done * max(self.total - done, 0))
        if self.time_limit is not None:
            estimates.append(max(self.time_limit - elapsed, 0.0))
        return min(estimates) if estimates else None

    def render(self, done):
        elapsed = time.monotonic() - self.start
        parts = [self.label]
        # Under a time budget the work ends at the count or the clock, whichever comes first.
        shares = ([min(done / self.total, 1.0)] if self.total else []) + (
            [min(elapsed / self.time_limit, 1.0)] if self.time_limit else [])
        if shares:
            filled = int(self.width * max(shares))
            parts.append("[" + "#" * filled + "-" * (self.width - filled) + "]")
        if self.total and not self.time_limit:
            parts.append(f"{done}/{self.total} {self.unit}")
        elif self.total:
            parts.append(f"{done} of at most {self.total} {self.unit}")
        else:
            parts.append(f"{done} {self.unit}")
        parts.append(f"elapsed {format_seconds(elapsed)}")
        eta = self.eta(done)
        parts.append(f"ETA {format_seconds(eta)}" if eta is not None else "ETA ?")
        if self.note:
            parts.append(self.note)
        return " ".join(parts)

    def update(self, done=None, note=None, force=False):
        """Sets the units done (and a note) and redraws."""
        if done is not None:
            self.done = done
        if note is not None:
            self.note = note
        line = self.render(self.done)
        if self._tty:
            self.stream.write("\r\033[K" + line)
            self._drawn = True
        elif force:
            self.stream.write(line + "\n")
        self.stream.flush()

    def advance(self, units=1, note=None):
        self.update(self.done + units, note)

    def close(self):
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def epoch_callback(fn):
    """A Keras callback calling `fn(epoch, logs)` at every epoch end, shared by Keras Tuner's copies.

    Example:

    >>> callback = epoch_callback(lambda epoch, logs: None)
    >>> import copy; copy.deepcopy(callback) is callback
    True
    """

    class EpochCallback(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            fn(epoch, logs or {})

        def __deepcopy__(self, memo):
            # Keras Tuner deep-copies callbacks for every trial; the state must stay shared.
            return self

    return EpochCallback()


class SearchMonitor:
    """Progress, TensorBoard summaries and a time budget for one search.

    Args:
        total: units expected (child epochs for `RLSearch`, ENAS epochs), or `None`.
        unit: name of a unit.
        max_minutes: wall-time budget; no new trial starts after it.
        log_dir: TensorBoard log directory, or `None` for no summaries.
        view_fn: `fn() -> ControllerView` of the running tuner (for summaries and notes).
        stream: where the progress line goes.

    Example:

    ```python
    monitor = SearchMonitor(total=20, unit="epochs", max_minutes=10, log_dir="results/logs")
    tuner = monitored(keras_rlnas.RLSearch)(hypermodel, objective="val_accuracy", max_trials=10)
    tuner.monitor = monitor
    tuner.search(x, y, epochs=2, validation_data=(x_val, y_val), callbacks=[monitor.epoch_callback()])
    ```
    """

    def __init__(self, total=None, unit="epochs", max_minutes=None, log_dir=None, view_fn=None, stream=None):
        self.progress = ProgressLine(total, unit, None if max_minutes is None else 60.0 * max_minutes, stream)
        self.deadline = None if max_minutes is None else self.progress.start + 60.0 * max_minutes
        self.log_dir = log_dir
        self.view_fn = view_fn
        self._summaries = None
        self._warned = False
        if log_dir:
            self._summaries = ControllerSummaries(log_dir)

    def time_up(self):
        return self.deadline is not None and time.monotonic() >= self.deadline

    def tick(self, units=1):
        self.progress.advance(units)

    def epoch_callback(self):
        """A Keras callback that advances the progress line at every epoch end."""
        return epoch_callback(lambda epoch, logs: self.tick())

    def after_trial(self, view=None, write_hparams=False):
        """Writes the new summaries and prints the line with the trial count and the best score."""
        try:
            view = view if view is not None else (self.view_fn() if self.view_fn else None)
            if view is not None and self._summaries is not None:
                self._summaries.write(view, write_hparams=write_hparams)
        except Exception as error:
            # Watching must never stop a search (e.g. a worker whose oracle is a client).
            if not self._warned:
                logger.warning("Search monitor: no summaries (%s: %s).", type(error).__name__, error)
                self._warned = True
            view = None
        if view is None:
            self.progress.update(force=True)
            return
        scores = [t.score for t in view.trials if t.score is not None]
        note = f"trials {len(view.trials)}"
        if scores:
            note += f", best {view.objective} {max(scores):.4f}"
        self.progress.update(note=note, force=True)

    def close(self):
        self.progress.close()
        if self._summaries is not None:
            self._summaries.close()


def monitored(tuner_class):
    """A subclass of a Keras Tuner `Tuner` class that reports to `self.monitor` after every trial.

    Set `tuner.monitor` to a `SearchMonitor` (or leave it `None`): after each
    trial it writes summaries and the progress line, and once its time budget
    is spent no new trial starts (the running one finishes).

    Example:

    ```python
    tuner = monitored(keras_rlnas.RLSearch)(hypermodel, objective="val_accuracy", max_trials=50)
    tuner.monitor = SearchMonitor(max_minutes=30)
    ```
    """

    class Monitored(tuner_class):
        monitor = None

        def pre_create_trial(self):
            super().pre_create_trial()
            if self.monitor is not None and self.monitor.time_up() and self.oracle.trials:
                # Keras Tuner has no stop request; an oracle at max_trials answers STOPPED.
                self.oracle.max_trials = len(self.oracle.trials)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            if self.monitor is not None:
                self.monitor.after_trial()

    Monitored.__name__ = Monitored.__qualname__ = f"Monitored{tuner_class.__name__}"
    return Monitored
