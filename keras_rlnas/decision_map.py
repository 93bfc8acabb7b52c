"""Maps a Keras Tuner search space onto the controller's decisions and back.

Every active hyperparameter becomes one controller decision, in the order of
the space: Choice and Boolean are categorical; Fixed is no decision; Int and
Float are categorical over their values when stepped and few, otherwise over
ordered bins of their (linear or log) range. Hyperparameters named by the
position convention of `keras_rlnas.spaces.structured` become attention
decisions (`skip[j]`, `input[k]`) and share softmax heads across positions.
"""

import keras_tuner

from keras_rlnas import _checks as checks
from keras_rlnas.controller.decisions import ANCHOR, CATEGORICAL, PICK, SKIP, Decision
from keras_rlnas.spaces import structured

HP = keras_tuner.engine.hyperparameters


class _Entry:
    """How one hyperparameter is decided: by which decision, and how to read it."""

    def __init__(self, hp, decision_index, choices=None, bins=None, bit=None):
        self.hp = hp
        self.decision_index = decision_index
        self.choices = choices
        self.bins = bins
        self.bit = bit

    def value(self, action, rng):
        if self.bit is not None:
            return bool(action[self.bit])
        if self.choices is not None:
            return self.choices[action]
        # A bin of the hyperparameter's cumulative-probability scale: its own
        # prob_to_value honours log / reverse_log sampling and steps.
        low = action / self.bins
        return self.hp.prob_to_value(min(low + rng.random() / self.bins, 1.0 - 1e-9))

    def action(self, value):
        if self.bit is not None:
            raise TypeError("Skip bits are read per decision.")
        if self.choices is not None:
            return self.choices.index(value)
        return min(int(self.hp.value_to_prob(value) * self.bins), self.bins - 1)


def _choices(hp, max_choices):
    """Every value of a hyperparameter when there are few, else `None` (use bins).

    An Int without a step (log or reverse-log sampling) always uses bins: they
    follow its sampling scale, as Keras Tuner's random draws do.
    """
    if isinstance(hp, HP.Boolean):
        return [False, True]
    if isinstance(hp, HP.Choice):
        if not hp.values:
            raise ValueError(f"Hyperparameter {hp.name!r} has an empty list of choices.")
        return list(hp.values)
    if isinstance(hp, (HP.Int, HP.Float)) and hp.step is not None:
        if hp._get_n_values() <= max_choices:
            # A log-stepped Int's values are min * step**i as floats; Keras Tuner casts each sample to int.
            return [int(value) for value in hp.values] if isinstance(hp, HP.Int) else list(hp.values)
        return None
    if isinstance(hp, (HP.Int, HP.Float)):
        return None
    raise TypeError(f"Hyperparameter {hp.name!r} of type {type(hp).__name__} is not supported.")


class DecisionMap:
    """The controller decisions of a search space, kept in step as the space grows.

    Args:
        num_bins: bins of an Int or Float that has too many values to list.
        max_choices: an Int / Float with at most this many values is categorical.

    Example:

    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> _ = hp.Choice("units", [32, 64]); _ = hp.Float("lr", 1e-4, 1e-1, sampling="log")
    >>> from keras_rlnas import DecisionMap
    >>> decision_map = DecisionMap()
    >>> [d.size for d in decision_map.sync(hp)]
    [2, 10]
    """

    def __init__(self, num_bins=10, max_choices=32):
        self.num_bins = checks.positive_int("num_bins", num_bins, minimum=2)
        self.max_choices = checks.positive_int("max_choices", max_choices, minimum=2)
        self.decisions = []
        self._entries = {}
        self._position_index = {}
        self._positions = set()
        self._anchored = set()

    def _add(self, decision):
        self.decisions.append(decision)
        return len(self.decisions) - 1

    def sync(self, space):
        """Adds decisions for hyperparameters new in `space`; returns the new decisions."""
        first_new = len(self.decisions)
        positions = {}
        for hp in space.space:
            if hp.name in self._entries or isinstance(hp, HP.Fixed):
                continue
            parsed = structured.parse_name(hp.name)
            group, index, token = parsed if parsed else (None, None, None)
            source = structured.skip_source(token) if parsed else None
            if source is not None:
                if not isinstance(hp, HP.Boolean):
                    raise TypeError(f"Skip hyperparameter {hp.name!r} must be a Boolean.")
                key = (group, index)
                if key not in self._position_index:
                    self._anchor_earlier(group, index)
                    self._position_index[key] = self._add(Decision(f"{group}[{index}].skip", SKIP, size=index, group=group))
                self._entries[hp.name] = _Entry(hp, self._position_index[key], bit=source)
            elif parsed and structured.input_slot(token) is not None:
                if not isinstance(hp, HP.Choice) or list(hp.values) != list(range(index)):
                    raise ValueError(f"Input hyperparameter {hp.name!r} must be a Choice over range({index}).")
                self._anchor_earlier(group, index)
                decision = Decision(hp.name, PICK, size=index, group=group, key=f"{group}.input")
                self._entries[hp.name] = _Entry(hp, self._add(decision), choices=list(range(index)))
            else:
                choices = _choices(hp, self.max_choices)
                size = len(choices) if choices is not None else self.num_bins
                key = f"{group}.{token}" if parsed else hp.name
                decision = Decision(hp.name, CATEGORICAL, size=size, key=key, group=group or "")
                self._entries[hp.name] = _Entry(hp, self._add(decision), choices=choices, bins=None if choices else size)
            if parsed:
                positions[(group, index)] = len(self.decisions) - 1
                self._positions.add((group, index))
        # A position's anchor is the controller's state after its last decision.
        for (group, index), last in positions.items():
            if (group, index) not in self._anchored and last >= first_new:
                self.decisions[last] = _with_anchor(self.decisions[last], index)
                self._anchored.add((group, index))
        return self.decisions[first_new:]

    def _anchor_earlier(self, group, index):
        # Earlier positions without any decision (the inputs of a cell) get a
        # step of their own so that attention has a state to look at.
        for position in range(index):
            if (group, position) not in self._positions:
                self._add(Decision(f"{group}[{position}].anchor", ANCHOR, group=group, anchor=position))
                self._positions.add((group, position))
                self._anchored.add((group, position))

    def sample(self, space, controller, greedy=False):
        """Samples values for every active hyperparameter of `space`.

        Returns:
            `(values, actions)`: a dict for Keras Tuner and the controller's
            actions (for `Controller.update`).
        """
        rollout = controller.rollout(greedy=greedy)
        filled = keras_tuner.HyperParameters()
        stepped = {}
        anchors = [i for i, d in enumerate(self.decisions) if d.kind == ANCHOR]

        def step(index):
            # The rollout must visit decisions in index order, as the batched
            # graph that scores them does; anchors are visited when passed.
            while anchors and anchors[0] < index:
                rollout.step(anchors.pop(0))
            stepped[index] = rollout.step(index)

        for hp in space.space:
            filled.merge([hp])
            if not filled.is_active(hp):
                continue
            entry = self._entries.get(hp.name)
            if entry is None:
                filled.values[hp.name] = hp.value if isinstance(hp, HP.Fixed) else hp.default
                continue
            if entry.decision_index not in stepped:
                step(entry.decision_index)
            filled.values[hp.name] = entry.value(stepped[entry.decision_index], controller.rng)
        return filled.values, list(rollout.finish().actions)

    def values_from_actions(self, actions, rng):
        """Values of every mapped hyperparameter from a full sample (no conditions checked).

        The fast path for spaces without conditional hyperparameters (the ENAS
        spaces), where every decision is made on every sample.
        """
        return {name: entry.value(actions[entry.decision_index], rng) for name, entry in self._entries.items()}

    def actions_from_values(self, values):
        """The actions that produce `values` (for trials not sampled by the controller)."""
        actions = [0 if d.kind == ANCHOR else None for d in self.decisions]
        for name, value in values.items():
            entry = self._entries.get(name)
            if entry is None:
                continue
            decision = self.decisions[entry.decision_index]
            if entry.bit is not None:
                bits = list(actions[entry.decision_index] or [0] * decision.size)
                bits[entry.bit] = int(bool(value))
                actions[entry.decision_index] = tuple(bits)
            else:
                actions[entry.decision_index] = entry.action(value)
        return actions


def _with_anchor(decision, index):
    return Decision(decision.name, decision.kind, decision.size, decision.key, decision.group, index)
