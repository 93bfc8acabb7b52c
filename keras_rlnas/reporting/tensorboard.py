"""TensorBoard summaries of the controller, beside Keras Tuner's per-trial logs.

Layout under the log directory (`tensorboard --logdir DIR/logs`):

- `controller/`: scalars `controller/reward`, `controller/baseline`,
  `controller/entropy`, `controller/loss`, `controller/skip_rate` (the batch's
  mean fraction of skip connections), per controller step; `trial/score`,
  `trial/best_score`, `trial/skip_rate` per trial; and `decisions/<name>`
  histograms: the current policy's probability of each value of every
  hyperparameter (the bucket of value `k` spans `[k - 0.5, k + 0.5]`; the
  value labels are in the report's heat map).
- `<trial_id>/execution0/`: Keras' training curves and the trial's
  hyperparameters for TensorBoard's HParams tab (written by Keras Tuner for
  `RLSearch`, by this module for tuners that do not run Keras fits).
"""

import json
import os

import numpy as np
import tensorflow as tf
from tensorboard.plugins.histogram import metadata
from tensorboard.plugins.hparams import api as hparams_api

from keras_rlnas.reporting import decisions
from keras_rlnas.reporting.view import skip_rate

STATE_FILE = "written.json"


class ControllerSummaries:
    """Writes what a `ControllerView` holds that is not in the log yet.

    Calling `write` after every trial is cheap and idempotent: which updates
    and trials were written is kept in `controller/written.json`, so a resumed
    search appends to the same curves.

    Args:
        log_dir: the TensorBoard log directory.
        samples: architectures sampled to estimate the decision probabilities.

    Example:

    ```python
    summaries = ControllerSummaries("results/logs")
    tuner.search(...)  # or after every trial:
    summaries.write(controller_view(tuner))
    ```
    """

    def __init__(self, log_dir, samples=200):
        self.log_dir = str(log_dir)
        self.controller_dir = os.path.join(self.log_dir, "controller")
        self.samples = samples
        self._writer = None
        self._state_path = os.path.join(self.controller_dir, STATE_FILE)
        self._state = {"updates": 0, "trials": []}
        if os.path.exists(self._state_path):
            with open(self._state_path) as f:
                self._state = json.load(f)

    def _get_writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.controller_dir)
        return self._writer

    def write(self, view, write_hparams=False):
        """Writes new controller steps and trials of `view`, and the current policy."""
        trials = {t.trial_id: t for t in view.trials}
        new_steps = view.history[self._state["updates"] :]
        written = set(self._state["trials"])
        new_trials = [t for t in view.trials if t.trial_id not in written and t.status in ("COMPLETED", "FAILED")]
        if not new_steps and not new_trials:
            return
        with self._get_writer().as_default():
            for update in new_steps:
                step = int(update.get("step", 0))
                for key in ("reward", "baseline", "entropy", "loss", "advantage"):
                    if key in update:
                        tf.summary.scalar(f"controller/{key}", float(update[key]), step=step)
                rates = [skip_rate(trials[t].hyperparameters.values) for t in update.get("trials", []) if t in trials]
                rates = [r for r in rates if r is not None]
                if rates:
                    tf.summary.scalar("controller/skip_rate", float(np.mean(rates)), step=step)
            best = self._state.get("best")
            for trial in new_trials:
                step = _trial_number(trial.trial_id)
                if trial.score is not None:
                    best = trial.score if best is None else max(best, trial.score)
                    tf.summary.scalar("trial/score", float(trial.score), step=step)
                    tf.summary.scalar("trial/best_score", float(best), step=step)
                rate = skip_rate(trial.hyperparameters.values)
                if rate is not None:
                    tf.summary.scalar("trial/skip_rate", rate, step=step)
            if new_steps:
                self._write_policy(view, int(new_steps[-1].get("step", 0)))
        if write_hparams:
            for trial in new_trials:
                self._write_hparams(trial, view.objective)
        self._get_writer().flush()
        self._state["updates"] = len(view.history)
        self._state["trials"] = sorted(written | {t.trial_id for t in new_trials})
        self._state["best"] = best
        os.makedirs(self.controller_dir, exist_ok=True)
        with open(self._state_path + ".tmp", "w") as f:
            json.dump(self._state, f)
        os.replace(self._state_path + ".tmp", self._state_path)

    def _write_policy(self, view, step):
        estimate = decisions.policy_probabilities(view, self.samples)
        if estimate is None:
            return
        rows, skips = estimate
        for row in rows:
            # The histogram plugin's tensor: one [left edge, right edge, count] row per bucket.
            edges = np.arange(len(row.labels), dtype=np.float64)
            buckets = np.stack([edges - 0.5, edges + 0.5, row.probabilities], axis=1)
            tf.summary.write(
                f"decisions/{row.name}",
                tf.constant(buckets, tf.float64),
                step=step,
                metadata=metadata.create_summary_metadata(row.name, "values: " + ", ".join(row.labels)),
            )
        probabilities = [m[~np.isnan(m)] for m in skips.values()]
        if probabilities:
            tf.summary.scalar("controller/policy_skip_rate", float(np.mean(np.concatenate(probabilities))), step=step)

    def _write_hparams(self, trial, objective):
        log_dir = os.path.join(self.log_dir, str(trial.trial_id), "execution0")
        writer = tf.summary.create_file_writer(log_dir)
        values = {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in trial.hyperparameters.values.items()}
        with writer.as_default():
            hparams_api.hparams(values, trial_id=str(trial.trial_id))
            if trial.score is not None:
                tf.summary.scalar(f"epoch_{objective}", float(trial.score), step=0)
        writer.flush()
        writer.close()

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _trial_number(trial_id):
    try:
        return int(trial_id)
    except ValueError:
        return 0
