"""`PolicyLearner`: the controller, its decision map, reward batching and saved state.

Every tuner drives the controller through it: `sample` values of a Keras
Tuner space, `add_reward` for each one evaluated, and every `update_every`
rewards it makes one REINFORCE update and appends a step to `history`.
"""

import dataclasses
import glob
import json
import os
import re

from keras_rlnas.controller.controller import Controller, read_state
from keras_rlnas.controller.options import PRESETS
from keras_rlnas.controller.rollout import Sample
from keras_rlnas.decision_map import DecisionMap

# The controller's arrays are written to a new numbered file each time, so the
# file a committed JSON names is never overwritten by a later, uncommitted one.
ARRAY_FILE = "controller-{:06d}.npz"
_ARRAY_PATTERN = re.compile(r"controller-(\d{6})\.npz$")


def trials_in_order(trials):
    """The trials of a `{trial_id: trial}` dict in the order they were created.

    Keras Tuner pads trial ids to the width of `max_trials`, which a resumed
    search may change, so ids are ordered by number.

    Example:

    >>> [t for t in trials_in_order({"0003": "c", "10": "e", "4": "d", "0000": "a"})]
    ['a', 'c', 'd', 'e']
    """
    def number(trial_id):
        return (0, int(trial_id), trial_id) if str(trial_id).isdigit() else (1, 0, str(trial_id))

    return [trials[trial_id] for trial_id in sorted(trials, key=number)]


@dataclasses.dataclass(frozen=True)
class ControllerView:
    """What reports and TensorBoard read from any tuner: trials, controller history, policy.

    Attributes:
        trials: the Keras Tuner trials, in trial-id order.
        objective: the objective's name, e.g. `"val_accuracy"`.
        history: one dict per REINFORCE update (see `PolicyLearner.history`).
        controller, decision_map, hyperparameters: the policy and the space,
            or `None` when the tuner has no controller (then no heat map).
    """

    trials: list
    objective: str
    history: tuple
    controller: object = None
    decision_map: object = None
    hyperparameters: object = None


def _check_agreement(controller_decisions, mapped_decisions):
    """Raises a `ValueError` where a (saved) controller's decisions and the space's differ."""
    for index, (made, mapped) in enumerate(zip(controller_decisions, mapped_decisions)):
        if made != mapped:
            raise ValueError(
                f"The controller's decision {index} is {made.name!r} ({made.kind}, size {made.size}), the search "
                f"space's {mapped.name!r} ({mapped.kind}, size {mapped.size}): the controller was saved by another "
                "version of keras_rlnas or for another space. Resume with that version, or start afresh "
                "(overwrite=True)."
            )


class PolicyLearner:
    """A controller that samples a search space and learns from batches of rewards.

    The controller is built on first use (in Keras Tuner's chief/worker mode
    only the chief needs one). Its state is the controller's arrays in a
    numbered `.npz` file plus plain JSON (`get_state`) that names that file:
    whoever writes the JSON last commits both (`save` writes `learner.json`;
    `ControllerOracle` puts the JSON into `oracle.json`).

    Args:
        update_every: rewards per REINFORCE update.
        controller_options: `Controller` options (over the preset's).
        preset: a `Controller.from_preset` name, or `None` for the defaults.
        num_bins, max_choices: of the `DecisionMap`.

    Example:

    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> _ = hp.Choice("units", [16, 32])
    >>> learner = PolicyLearner(update_every=2, controller_options={"seed": 0})
    >>> for _ in range(2):
    ...     values, actions = learner.sample(hp)
    ...     learner.add_reward(actions, float(values["units"] == 32)) is None
    True
    False
    >>> [entry["step"] for entry in learner.history]
    [0]
    """

    def __init__(self, update_every=1, controller_options=None, preset=None, num_bins=10, max_choices=32):
        if not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"`update_every` must be an int >= 1, got {update_every!r}.")
        self.update_every = update_every
        self.controller_options = dict(controller_options or {})
        self.preset = preset
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; expected one of {sorted(PRESETS)}.")
        Controller.check_options(**{**PRESETS.get(preset, {}), **self.controller_options})
        self.decision_map = DecisionMap(num_bins=num_bins, max_choices=max_choices)
        self._controller = None
        self._saved_controller = None
        self._changed = False
        self._generation = 0
        self._pending = []
        self._history = []

    # ---------------------------------------------------------------- controller
    @property
    def controller(self):
        """The `Controller`, built (and given its saved state) on first use."""
        if self._controller is None:
            if self.preset is not None:
                self._controller = Controller.from_preset(self.preset, **self.controller_options)
            else:
                self._controller = Controller(**self.controller_options)
            if self._saved_controller is not None:
                self._controller.set_state(*self._saved_controller)
                self._saved_controller = None
            _check_agreement(self._controller.decisions, self.decision_map.decisions)
            self._controller.extend(self.decision_map.decisions[len(self._controller.decisions) :])
        return self._controller

    @property
    def has_controller(self):
        """Whether a controller was built or a saved one waits to be."""
        return self._controller is not None or self._saved_controller is not None

    def sync(self, space):
        """Adds decisions for hyperparameters new in `space`; returns them."""
        new = self.decision_map.sync(space)
        if new and self._controller is not None:
            _check_agreement(self._controller.decisions, self.decision_map.decisions)
            self._controller.extend(self.decision_map.decisions[len(self._controller.decisions) :])
        return new

    def sample(self, space, greedy=False):
        """`(values, actions)` for the active hyperparameters of `space` (see `DecisionMap.sample`)."""
        self.sync(space)
        self._changed = True  # The controller's random state moves on.
        return self.decision_map.sample(space, self.controller, greedy=greedy)

    def sample_actions(self, greedy=False):
        """A `Sample` making every decision: the fast path for spaces without conditions."""
        self._changed = True
        return self.controller.sample(greedy=greedy)

    @property
    def num_updates(self):
        """REINFORCE updates made so far."""
        return len(self._history)

    # ------------------------------------------------------------------ learning
    def add_reward(self, actions, reward, trial=None, sampled_at=None):
        """Queues `reward` for `actions`; every `update_every` rewards, one update.

        Args:
            actions: the controller's actions (from `sample`), `None` where a
                decision was not made.
            reward: a finite float; higher is better.
            trial: a JSON-able tag recorded with the reward (a trial id).
            sampled_at: `num_updates` when `actions` were sampled, for the
                staleness the step records (the current one when `None`).

        Returns:
            The new `history` entry when an update was made, else `None`.
        """
        self._pending.append({
            "actions": [list(a) if isinstance(a, tuple) else a for a in actions],
            "reward": float(reward),
            "trial": trial,
            "sampled_at": self.num_updates if sampled_at is None else int(sampled_at),
        })
        if len(self._pending) < self.update_every:
            return None
        batch, self._pending = self._pending, []
        rewards = [entry["reward"] for entry in batch]
        samples = [Sample(tuple(_tuples(entry["actions"]))) for entry in batch]
        staleness = [self.num_updates - entry["sampled_at"] for entry in batch]
        stats = self.controller.update(samples, rewards)
        stats.update(
            step=len(self._history),
            trials=[entry["trial"] for entry in batch],
            rewards=rewards,
            min_reward=min(rewards),
            max_reward=max(rewards),
            staleness=staleness,
        )
        self._history.append(stats)
        self._changed = True
        return stats

    @property
    def pending(self):
        """Rewards waiting for the next update (read-only)."""
        return tuple(dict(entry) for entry in self._pending)

    @property
    def history(self):
        """One dict per REINFORCE update, oldest first (read-only): `step`,
        `reward` (the batch's mean), `baseline`, `entropy`, `loss`,
        `log_prob`, `advantage`, `rewards`, `trials`, `min_reward`,
        `max_reward`, `staleness`."""
        return tuple(dict(entry) for entry in self._history)

    # --------------------------------------------------------------------- state
    def write_arrays(self, directory):
        """Writes the controller's arrays to a new numbered file if they changed.

        Files older than the one before it are removed: the JSON committed
        last names one of the two.
        """
        if self._controller is None or not self._changed:
            return
        self._generation += 1
        path = os.path.join(directory, ARRAY_FILE.format(self._generation))
        self._controller.save(path + ".tmp")
        os.replace(path + ".tmp", path)
        self._changed = False
        for old in glob.glob(os.path.join(directory, "controller-*.npz")):
            match = _ARRAY_PATTERN.search(old)
            if match and int(match.group(1)) < self._generation - 1:
                os.remove(old)

    def get_state(self):
        """The JSON half of the state; names the array file `write_arrays` wrote last."""
        return {
            "generation": self._generation,
            "file": ARRAY_FILE.format(self._generation) if self._generation else None,
            "pending": [dict(entry) for entry in self._pending],
            "history": [dict(entry) for entry in self._history],
        }

    def set_state(self, state, directory):
        """Restores a `get_state()` and the array file it names in `directory`."""
        self._generation = state["generation"]
        self._pending = [dict(entry) for entry in state["pending"]]
        self._history = [dict(entry) for entry in state["history"]]
        self._controller = None
        self._saved_controller = None
        self._changed = False
        if state["file"] is not None:
            self._saved_controller = read_state(os.path.join(directory, state["file"]))

    def save(self, directory, state_file="learner.json", extra=None):
        """Writes the whole state to `directory`: arrays first, `state_file` last.

        Args:
            directory: an existing folder.
            state_file: the JSON file that commits the state.
            extra: JSON of the caller to commit with it (at the top level).
        """
        self.write_arrays(directory)
        _write_json_atomic(os.path.join(directory, state_file), {**(extra or {}), "learner": self.get_state()})

    def load(self, directory, state_file="learner.json"):
        """Restores a `save`; returns its `extra` (`None` when there is no saved state)."""
        path = os.path.join(directory, state_file)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            state = json.load(f)
        self.set_state(state.pop("learner"), directory)
        return state


def _write_json_atomic(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.replace(path + ".tmp", path)


def _tuples(actions):
    """JSON turns tuples into lists; skip actions are tuples again."""
    return [tuple(a) if isinstance(a, list) else a for a in actions]


__all__ = ["ControllerView", "PolicyLearner"]
