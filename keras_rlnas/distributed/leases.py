"""Trial leases: how a chief tells a slow worker from a dead one.

A worker holds a lease on the trial it runs, renewed by every call it makes
about that trial (heartbeats included). A lease not renewed for
`trial_timeout` seconds means the worker is gone: the trial is re-queued with
the same values, or failed with the penalty reward once it has been lost
`lost_trial_retries` times, so a search never waits forever on a dead worker.
"""

import logging
import time
import traceback

import keras_tuner
from keras_tuner.engine import trial as trial_module

from keras_rlnas import locking
from keras_rlnas.distributed import protocol

logger = logging.getLogger(__name__)

TrialStatus = trial_module.TrialStatus
# Seconds between sweeps beyond which the chief counts itself stalled.
STALL = 1.0


class TrialLeases:
    """Mixin for a `keras_tuner.Oracle` that a chief serves to workers.

    Besides leases it changes two things in chief mode only: once `max_trials`
    trials exist, a worker asking for one more gets IDLE (not STOPPED) while
    others still run, since a lost trial may need it; and a restarted chief
    keeps the trials its workers were running instead of re-queueing them, so
    their results, which the workers re-send, are not trained twice.

    Outside chief/worker mode nothing here changes Keras Tuner's behaviour.

    Args (of `_init_leases`):
        trial_timeout: seconds a running trial may go without a sign of life
            from its worker; `None` waits forever (Keras Tuner's behaviour).
        lost_trial_retries: times a lost trial is re-queued before it fails.
    """

    def _init_leases(self, trial_timeout, lost_trial_retries):
        if trial_timeout is not None and not (isinstance(trial_timeout, (int, float)) and trial_timeout > 0):
            raise ValueError(f"`trial_timeout` must be a number of seconds > 0 or None, got {trial_timeout!r}.")
        if not isinstance(lost_trial_retries, int) or lost_trial_retries < 0:
            raise ValueError(f"`lost_trial_retries` must be an int >= 0, got {lost_trial_retries!r}.")
        self.trial_timeout = trial_timeout
        self.lost_trial_retries = lost_trial_retries
        # trial_id -> runs lost with their worker.
        self.lost_runs = {}
        # IDLE answers given, a measure of how hard waiting workers poll.
        self.idle_answers = 0
        # Monotonic times of the last sign of life, per trial and per tuner.
        self._trial_seen = {}
        self._tuner_seen = {}
        self._saved_ongoing = {}
        self._exhausted = False
        self._last_sweep = None

    # --------------------------------------------------------------- Oracle API
    @locking.synchronized
    def create_trial(self, tuner_id):
        try:
            now = time.monotonic()
            self._tuner_seen[tuner_id] = now
            trial = super().create_trial(tuner_id)
            if trial.status == TrialStatus.RUNNING:
                self._trial_seen[trial.trial_id] = now
            elif trial.status == TrialStatus.STOPPED:
                if protocol.is_chief() and self._may_need_workers():
                    # A running trial may yet be lost and need this worker.
                    self.tuner_ids.add(tuner_id)
                    self.idle_answers += 1
                    return trial_module.Trial(self.get_space(), status=TrialStatus.IDLE)
                # Not only on the chief: the server's threads may not see its
                # environment (Keras Tuner's tests give each thread its own).
                if getattr(self, "abort_message", None) is None and not self._all_created():
                    self._exhausted = True
            return trial
        except Exception:
            # Served to workers, the oracle keeps answering: the error becomes
            # the reason the search stops, which the chief's search() raises.
            self.abort_message = f"Creating a trial failed:\n{traceback.format_exc()}"
            logger.error(self.abort_message)
            self.tuner_ids.discard(tuner_id)
            return trial_module.Trial(self.get_space(), status=TrialStatus.STOPPED)

    @locking.synchronized
    def update_trial(self, trial_id, metrics, step=0):
        """Records `metrics` of `trial_id`, as `keras_tuner.Oracle.update_trial` does.

        A heartbeat (metrics holding only `HEARTBEAT_METRIC`) renews the
        trial's lease and records nothing.

        Raises:
            KeyError: `trial_id` is not a trial of this oracle.
            ValueError: the metrics lack the objective (Keras Tuner's error).
        """
        metrics = dict(metrics)
        metrics.pop(protocol.HEARTBEAT_METRIC, None)
        if trial_id not in self.trials:
            raise KeyError(f"Unknown trial {trial_id!r}: this oracle has {len(self.trials)} trials, none with that id.")
        self._renew(trial_id)
        if not metrics:
            return self.trials[trial_id]
        return super().update_trial(trial_id, metrics, step=step)

    # ------------------------------------------------------------ chief's loop
    @locking.synchronized
    def expire_lost_trials(self):
        """Re-queues (or fails) the trials whose workers went silent.

        Returns:
            The ids of the trials found lost.
        """
        if self.trial_timeout is None:
            return []
        try:
            return self._expire(time.monotonic())
        except Exception:
            logger.error("Expiring lost trials failed:\n%s", traceback.format_exc())
            return []

    @keras_tuner.synchronized
    def search_finished(self):
        """Whether every trial has ended and no new one will be created."""
        if self.ongoing_trials:
            return False
        if getattr(self, "abort_message", None) is not None:
            return True
        return not self._retry_queue and (self._exhausted or self._all_created())

    @keras_tuner.synchronized
    def live_workers(self):
        """Ids of the workers not yet told to stop and not known dead."""
        return sorted(self.tuner_ids)

    # ----------------------------------------------------------------- helpers
    def _all_created(self):
        return self.max_trials is not None and len(self.trials) >= self.max_trials

    def _may_need_workers(self):
        if getattr(self, "abort_message", None) is not None:
            return False
        return bool(self.ongoing_trials or self._retry_queue)

    def _renew(self, trial_id):
        now = time.monotonic()
        for tuner_id, trial in self.ongoing_trials.items():
            if trial.trial_id == trial_id:
                self._trial_seen[trial_id] = now
                self._tuner_seen[tuner_id] = now

    def _expire(self, now):
        if self._last_sweep is not None and now - self._last_sweep > STALL:
            # The chief itself was stalled (a long controller update holds
            # the lock): the workers could not be heard, so that time is not theirs.
            pause = now - self._last_sweep - STALL
            self._trial_seen = {k: t + pause for k, t in self._trial_seen.items()}
            self._tuner_seen = {k: t + pause for k, t in self._tuner_seen.items()}
        self._last_sweep = now
        lost = [
            (tuner_id, trial)
            for tuner_id, trial in self.ongoing_trials.items()
            # A lease first seen here (after a restart) starts its clock now.
            if now - self._trial_seen.setdefault(trial.trial_id, now) > self.trial_timeout
        ]
        for tuner_id, trial in lost:
            self.ongoing_trials.pop(tuner_id)
            self.tuner_ids.discard(tuner_id)
            self._trial_seen.pop(trial.trial_id, None)
            self._tuner_seen.pop(tuner_id, None)
            runs = self.lost_runs[trial.trial_id] = self.lost_runs.get(trial.trial_id, 0) + 1
            note = f"Worker {tuner_id!r} gave no sign of life for {self.trial_timeout:g} s (run {runs} of this trial lost)."
            if runs <= self.lost_trial_retries:
                logger.warning("%s Trial %s is re-queued.", note, trial.trial_id)
                trial.status = TrialStatus.INVALID
                trial.message = note
                self._retry_queue.insert(0, trial.trial_id)
                self._save_trial(trial)
            else:
                logger.warning("%s Trial %s fails.", note, trial.trial_id)
                failed = trial_module.Trial(trial.hyperparameters.copy(), trial_id=trial.trial_id, status=TrialStatus.FAILED)
                failed.message = note
                self.end_trial(failed)
        for tuner_id, seen in list(self._tuner_seen.items()):
            if tuner_id not in self.ongoing_trials and now - seen > self.trial_timeout:
                # Gone while idle: the chief must not wait for it to hear STOPPED.
                self.tuner_ids.discard(tuner_id)
                del self._tuner_seen[tuner_id]
        if lost:
            self.save()
        return [trial.trial_id for _, trial in lost]

    def _accept_end(self, trial):
        """Pops the error text sent with `trial`; says whether its end is news.

        A worker re-sends an end its restarted chief may not have recorded,
        and a worker thought lost may finish after all: the first result of a
        trial counts, later ones are dropped.
        """
        message = trial.hyperparameters.values.pop(protocol.MESSAGE_KEY, None)
        if message and not trial.message:
            trial.message = message
        trial_id = trial.trial_id
        if trial_id not in self.trials or trial_id in self.end_order:
            logger.info("Dropping a repeated or unknown end of trial %s.", trial_id)
            return False
        if trial_id in self._retry_queue:
            self._retry_queue.remove(trial_id)
        self._trial_seen.pop(trial_id, None)
        return True

    # ------------------------------------------------------------------- state
    def get_state(self):
        state = super().get_state()
        state["leases"] = {"lost_runs": self.lost_runs, "exhausted": self._exhausted}
        return state

    def set_state(self, state):
        # oracle.json is written last: a trial file it does not list was never
        # handed to a worker (its creation did not finish), so it is dropped.
        committed = set(state.get("start_order", []))
        for trial_id in [t for t in self.trials if t not in committed]:
            logger.warning("Dropping trial %s, created but never started.", trial_id)
            del self.trials[trial_id]
        super().set_state(state)
        leases = state.get("leases", {})
        self.lost_runs = dict(leases.get("lost_runs", {}))
        self._exhausted = leases.get("exhausted", False)
        self._saved_ongoing = dict(state.get("ongoing_trials", {}))

    def reload(self):
        super().reload()
        if not protocol.is_chief():
            return
        # Keras Tuner re-queues the trials that were running; their workers
        # are likely still running them and will report, so they stay theirs.
        for tuner_id, trial_id in self._saved_ongoing.items():
            if trial_id in self.trials and trial_id not in self.end_order:
                if trial_id in self._retry_queue:
                    self._retry_queue.remove(trial_id)
                self.ongoing_trials[tuner_id] = self.trials[trial_id]
        self._trial_seen = {}
        self._tuner_seen = {}
        self._last_sweep = None
