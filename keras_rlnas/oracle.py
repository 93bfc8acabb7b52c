"""`ControllerOracle`: a Keras Tuner oracle whose sampler is a REINFORCE-trained RNN."""

import logging
import math
import numbers
import os
import traceback

import keras_tuner
from keras_tuner.engine import trial as trial_module

from keras_rlnas import locking, rewards
from keras_rlnas.controller.learner import ControllerView, PolicyLearner, trials_in_order
from keras_rlnas.controller.options import preset_or_options
from keras_rlnas.distributed import protocol, storage
from keras_rlnas.distributed.leases import TrialLeases

logger = logging.getLogger(__name__)

TrialStatus = trial_module.TrialStatus

# Chosen on benchmarks/oracle_efficiency.py for budgets of 50-500 trials, where
# the paper's settings (learning rate 6e-4, m = 8) make a few dozen tiny steps
# and the policy barely moves. A larger step on batches of 4, advantages scaled
# by the rewards' running spread (so the step does not depend on the metric's
# units), and a wider weight initialisation, which gives the anchors distinct
# hidden states from the start so skip attention can tell positions apart.
DEFAULT_CONTROLLER_OPTIONS = dict(
    num_layers=1,
    units=64,
    init_range=0.5,
    learning_rate=0.01,
    entropy_weight=1e-3,
    baseline_decay=0.9,
    normalize_advantages=True,
    clip_norm=5.0,
)


class ControllerOracle(TrialLeases, keras_tuner.Oracle):
    """A Keras Tuner oracle driven by an LSTM controller trained with REINFORCE.

    It maps whatever space the hypermodel declares onto controller decisions
    (see `keras_rlnas.DecisionMap`), samples every active value, and after
    every `update_every` finished trials makes one policy-gradient step with
    the trials' rewards (Zoph & Le, 2017). A trial that fails (an exception,
    a NaN loss, out of memory) is worth `failure_reward`; a trial sent back for
    a retry (INVALID) is retried with the same values and rewarded once.
    A sampled architecture that was already tried is not trained again: the
    controller learns from its known reward and samples anew (up to
    `max_collisions` times), then a uniformly random untried one is drawn as
    `keras_tuner.RandomSearch` would; when none is found either, the space is
    exhausted and the search stops, as Keras Tuner's does.

    After `max_consecutive_failed_trials` failed trials in a row, `end_trial`
    raises Keras Tuner's `RuntimeError`, so it reaches the caller of
    `search()` of any tuner, with the oracle's lock already released. A
    controller that fails to sample (a bug, a broken saved state) is logged
    and the trial takes random values; as many failures in a row stop the
    search with the controller's error.

    In Keras Tuner's chief/worker mode only the chief builds the controller;
    rewards then arrive out of order, from architectures sampled before some
    of the latest updates. They are used as they come, as plain REINFORCE on
    slightly stale samples (no importance weights); `max_staleness` drops the
    ones sampled too many updates ago. A trial whose worker stops sending
    heartbeats for `trial_timeout` seconds is re-queued (see
    `keras_rlnas.distributed`). State is written so that a chief killed at any
    moment resumes with every recorded trial and controller update.

    Args:
        objective, max_trials, seed, hyperparameters, allow_new_entries,
        tune_new_entries, max_retries_per_trial,
        max_consecutive_failed_trials: as for
            `keras_tuner.oracles.RandomSearchOracle`, in its order.
        update_every: trials per REINFORCE update (`m`; 8 in the paper).
        reward: `"objective"` (the score in the objective's direction),
            `"nas"` (Zoph & Le's: the accuracy cubed, the best of the last
            5 epochs when the trial reports each epoch, else its best
            epoch's, as Keras Tuner reports it) or a callable
            `fn(trial, objective) -> float`.
        failure_reward: reward of a failed trial; `None` uses the lowest
            reward seen so far (a failure before any reward is recorded but
            not learned from).
        controller_options: options of `keras_rlnas.Controller`, over
            `DEFAULT_CONTROLLER_OPTIONS`, or `"nas"` for the paper's
            controller unchanged (a preset of `keras_rlnas.controller.PRESETS`).
        num_bins: bins of a Float / Int with too many values to list.
        max_collisions: fresh samples tried when one repeats a trained one.
        max_staleness: rewards of architectures sampled more than this many
            controller updates ago are recorded but not learned from; `None`
            learns from all of them.
        trial_timeout: chief/worker mode: seconds a running trial may go
            without a sign of life from its worker before it counts as lost;
            `None` waits forever.
        lost_trial_retries: chief/worker mode: times a lost trial is re-queued
            with the same values before it fails with `failure_reward`.

    Example:

    >>> import keras_tuner
    >>> from keras_rlnas import ControllerOracle
    >>> oracle = ControllerOracle(keras_tuner.Objective("score", "max"), max_trials=4, seed=1)
    >>> oracle.hyperparameters.Choice("units", [16, 32]) in (16, 32)
    True
    >>> oracle.populate_space("0")["values"]["units"] in (16, 32)
    True
    """

    def __init__(
        self,
        objective=None,
        max_trials=10,
        seed=None,
        hyperparameters=None,
        allow_new_entries=True,
        tune_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
        update_every=4,
        reward="objective",
        failure_reward=None,
        controller_options=None,
        num_bins=10,
        max_collisions=20,
        max_staleness=None,
        trial_timeout=300.0,
        lost_trial_retries=1,
    ):
        _check_oracle_arguments(max_trials, seed, hyperparameters, max_retries_per_trial, max_consecutive_failed_trials)
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        if seed == 0:
            # Oracle takes `seed or random` and would draw a random seed for 0.
            self.seed = self._seed_state = 0
        if failure_reward is not None and (
            isinstance(failure_reward, bool) or not isinstance(failure_reward, numbers.Real)
            or not math.isfinite(failure_reward)
        ):
            raise ValueError(f"`failure_reward` must be finite or None, got {failure_reward!r}.")
        if not isinstance(max_collisions, int) or max_collisions < 0:
            raise ValueError(f"`max_collisions` must be an int >= 0, got {max_collisions!r}.")
        if max_staleness is not None and (not isinstance(max_staleness, int) or max_staleness < 0):
            raise ValueError(f"`max_staleness` must be an int >= 0 or None, got {max_staleness!r}.")
        self._init_leases(trial_timeout, lost_trial_retries)
        self.update_every = update_every
        self.reward_fn = rewards.get(reward)
        if hasattr(self.reward_fn, "check"):
            # Refused now, not after the first trial's training.
            self.reward_fn.check(self.objective)
        self.failure_reward = failure_reward
        preset, self.controller_options = preset_or_options(controller_options, DEFAULT_CONTROLLER_OPTIONS)
        self.max_collisions = max_collisions
        self.max_staleness = max_staleness
        # The controller, its decision map, the queued rewards and the update history.
        self.learner = PolicyLearner(
            update_every, {"seed": self.seed, **self.controller_options}, preset=preset, num_bins=num_bins
        )
        # While set, save() waits: end_trial commits the end and its reward at once.
        self._deferred_save = False
        # trial_id -> the controller actions that produced the trial.
        self.trial_actions = {}
        self.rewarded = set()
        self.abort_message = None
        # Controller samples that failed in a row (each trial then takes random values).
        self._sampling_failures = 0
        # The error end_trial raises once the oracle's lock is released.
        self._end_error = None
        # trial_id -> controller updates made before its architecture was sampled.
        self.sampled_at = {}
        self.stale_rewards = []

    # ---------------------------------------------------------------- controller
    @property
    def controller(self):
        """The controller, built on first use (only the process that samples needs it)."""
        known = len(self.learner.decision_map.decisions)
        new = self.learner.sync(self.hyperparameters)
        if new and known and logger.isEnabledFor(logging.INFO):
            logger.info("Search space grew by %d decisions.", len(new))
        return self.learner.controller

    @property
    def decision_map(self):
        """How the space maps onto the controller's decisions (`keras_rlnas.DecisionMap`)."""
        return self.learner.decision_map

    @property
    def updates(self):
        """One dict per REINFORCE update (read-only; see `PolicyLearner.history`)."""
        return self.learner.history

    def controller_view(self):
        """What reports read: trials, objective, controller history, policy and space."""
        return ControllerView(
            trials=trials_in_order(self.trials),
            objective=self.objective.name,
            history=self.learner.history,
            controller=self.controller,
            decision_map=self.decision_map,
            hyperparameters=self.hyperparameters,
        )

    # --------------------------------------------------------------- Oracle API
    def populate_space(self, trial_id):
        if self.abort_message is not None:
            return {"status": TrialStatus.STOPPED, "values": None}
        try:
            values = self._sample_new(trial_id)
            self._sampling_failures = 0
        except Exception as error:
            # One failure must not end a search that random values can continue; failures
            # in a row would turn it into a random search without a word, so they stop it.
            self._sampling_failures += 1
            if self._sampling_failures >= self.max_consecutive_failed_trials:
                raise RuntimeError(
                    f"The controller failed to sample {self._sampling_failures} times in a row "
                    f"(max_consecutive_failed_trials={self.max_consecutive_failed_trials}); the last "
                    f"error: {error!r}"
                ) from error
            logger.error("Controller sampling failed; using random values:\n%s", traceback.format_exc())
            values = self._random_values()
        if values is None:
            # Every architecture tried (or none untried found): RandomSearch stops here too.
            return {"status": TrialStatus.STOPPED, "values": None}
        return {"status": TrialStatus.RUNNING, "values": values}

    def _sample_new(self, trial_id):
        """Values of an untried architecture, or `None` when none is found."""
        controller = self.controller
        known = self._known_rewards()
        for _ in range(self.max_collisions + 1):
            values, actions = self.learner.sample(self.hyperparameters)
            key = self._values_key(values)
            if key not in self._tried_so_far:
                self.trial_actions[trial_id] = actions
                self.sampled_at[trial_id] = controller.num_updates
                return values
            if key in known:
                # Already trained: learn from the known reward, sample again.
                self._add_reward(actions, known[key], None)
        # The policy keeps to tried architectures; a uniform draw may still find one.
        values = self._random_values()
        if values is not None:
            self.sampled_at[trial_id] = controller.num_updates
        return values

    def _values_key(self, values):
        filled = self.hyperparameters.copy()
        filled.values = dict(values)
        filled.ensure_active_values()
        return self._compute_values_hash(filled.values)

    def _known_rewards(self):
        known = {}
        for trial_id in self.end_order:
            trial = self.trials[trial_id]
            if trial.status == TrialStatus.COMPLETED and trial_id in self.rewarded:
                try:
                    known[self._id_to_hash[trial_id]] = self._reward(trial)
                except Exception:
                    continue  # Its failure was logged and penalised when it ended.
        return known

    @locking.synchronized
    def end_trial(self, trial):
        """Records the end of `trial`, rewards it and saves, as one step.

        Raises:
            RuntimeError: `max_consecutive_failed_trials` trials failed in a
                row (Keras Tuner's error, with the last trial's message), or
                Keras Tuner could not end the trial. Raised after the lock is
                released; a chief serving workers does not raise here: its
                `search()` does.
        """
        if not self._accept_end(trial):
            return
        # One save for the end and its reward: a crash between two saves
        # would leave a trial ended but never learned from.
        self._deferred_save = True
        self._end_error = None
        try:
            try:
                super().end_trial(trial)
            except Exception as error:
                self.abort_message = traceback.format_exc()
                logger.error("Trial %s could not be ended:\n%s", trial.trial_id, self.abort_message)
                self._end_error = error
            try:
                self._reward_finished(self.trials[trial.trial_id])
            except Exception:
                logger.error("Rewarding trial %s failed:\n%s", trial.trial_id, traceback.format_exc())
        finally:  # an interrupt (Ctrl-C) too: a flag left set would stop every later save
            self._deferred_save = False
        self.save()
        error, self._end_error = self._end_error, None
        if error is not None and not protocol.is_chief():
            raise error

    def _check_consecutive_failures(self):
        # Keras Tuner raises in the middle of end_trial, before the trial is
        # saved and leaves `ongoing_trials`: end_trial finishes, then raises.
        try:
            super()._check_consecutive_failures()
        except RuntimeError as error:
            self.abort_message = str(error)
            self._end_error = error

    def _reward(self, trial):
        value = float(self.reward_fn(trial, self.objective))
        if not math.isfinite(value):
            raise ValueError(f"Reward of trial {trial.trial_id} is {value}.")
        return value

    def _reward_finished(self, trial):
        if trial.trial_id in self.rewarded or trial.status not in (TrialStatus.COMPLETED, TrialStatus.FAILED):
            return
        actions = self.trial_actions.get(trial.trial_id)
        if not actions:
            # Not sampled by this controller (a user-given trial), or sampled from a space still empty (a
            # tuner that declares it while the trial runs): infer its actions from what ran.
            self.controller  # noqa: B018 - syncs the decision map with the space.
            actions = self.decision_map.actions_from_values(trial.hyperparameters.values)
        reward = None
        if trial.status == TrialStatus.COMPLETED:
            try:
                reward = self._reward(trial)
            except Exception as error:
                trial.message = f"{trial.message or ''}\nReward failed: {error}".strip()
        if reward is None:
            reward = self.failure_reward if self.failure_reward is not None else self._lowest_reward()
        self.rewarded.add(trial.trial_id)
        if reward is None:
            # Any number would be a guess: 0 tops every reward of a negated loss.
            logger.info("Trial %s failed before any reward was seen: not learned from.", trial.trial_id)
            return
        staleness = self._staleness(trial.trial_id)
        if self.max_staleness is not None and staleness > self.max_staleness:
            logger.info("Trial %s was sampled %d updates ago: not learned from.", trial.trial_id, staleness)
            self.stale_rewards.append(trial.trial_id)
            return
        self._add_reward(actions, reward, trial.trial_id)

    def _staleness(self, trial_id):
        """Controller updates made between sampling `trial_id` and now."""
        if trial_id not in self.sampled_at:
            return 0
        return self.learner.num_updates - self.sampled_at[trial_id]

    def _lowest_reward(self):
        seen = [p["reward"] for p in self.learner.pending] + [u["min_reward"] for u in self.learner.history]
        return min(seen) if seen else None

    def _add_reward(self, actions, reward, trial_id):
        self.controller  # noqa: B018 - the space may have grown since the last update.
        self.learner.add_reward(actions, reward, trial_id, sampled_at=self.sampled_at.get(trial_id))

    # --------------------------------------------------------------------- state
    def get_state(self):
        state = super().get_state()
        state["controller"] = {
            **self.learner.get_state(),
            "trial_actions": self.trial_actions,
            "rewarded": sorted(self.rewarded),
            "abort_message": self.abort_message,
            "sampled_at": self.sampled_at,
            "stale_rewards": self.stale_rewards,
        }
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = state.get("controller", {})
        self.trial_actions = {k: _tuples(v) for k, v in saved.get("trial_actions", {}).items()}
        self.rewarded = set(saved.get("rewarded", []))
        self.abort_message = saved.get("abort_message")
        self.sampled_at = saved.get("sampled_at", {})
        self.stale_rewards = saved.get("stale_rewards", [])
        self.learner.controller_options["seed"] = self.seed
        if "generation" in saved:
            # The controller's arrays: the file this oracle.json committed.
            self.learner.set_state(saved, self._project_dir)

    def _save_trial(self, trial):
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        storage.write_json_atomic(path, trial.get_state())

    def save(self):
        if self._deferred_save:
            return
        self.learner.write_arrays(self._project_dir)
        # oracle.json last, atomically: it commits the trials, the rewards and
        # (by name) the controller arrays that go with them.
        storage.write_json_atomic(self._get_oracle_fname(), self.get_state())


def _check_oracle_arguments(max_trials, seed, hyperparameters, max_retries_per_trial, max_consecutive_failed_trials):
    def is_int(value):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if max_trials is not None and not (is_int(max_trials) and max_trials >= 1):
        raise ValueError(f"`max_trials` must be an int >= 1 or None, got {max_trials!r}.")
    if seed is not None and not (is_int(seed) and seed >= 0):
        # It seeds NumPy's generator too, which takes no negative seed.
        raise ValueError(f"`seed` must be an int >= 0 or None, got {seed!r}.")
    if hyperparameters is not None and not isinstance(hyperparameters, keras_tuner.HyperParameters):
        raise ValueError(
            f"`hyperparameters` must be a keras_tuner.HyperParameters or None, got {hyperparameters!r}. "
            "Positional arguments follow RandomSearchOracle: objective, max_trials, seed, hyperparameters."
        )
    if not (is_int(max_retries_per_trial) and max_retries_per_trial >= 0):
        raise ValueError(f"`max_retries_per_trial` must be an int >= 0, got {max_retries_per_trial!r}.")
    if max_consecutive_failed_trials is not None and not (
        is_int(max_consecutive_failed_trials) and max_consecutive_failed_trials >= 1
    ):
        raise ValueError(
            f"`max_consecutive_failed_trials` must be an int >= 1 or None, got {max_consecutive_failed_trials!r}."
        )


def _tuples(actions):
    """JSON turns tuples into lists; skip actions are tuples again."""
    return [tuple(a) if isinstance(a, list) else a for a in actions]
