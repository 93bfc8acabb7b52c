"""Maps a Keras Tuner search space onto the controller's decisions and back.

Every active hyperparameter becomes one controller decision, in the order of
the space: Choice and Boolean are categorical; Fixed is no decision; Int and
Float are categorical over their values when stepped and few, otherwise over
ordered bins of their (linear or log) range. Hyperparameters named by the
position convention of `keras_rlnas.spaces.structured` become attention
decisions (`skip[j]`, `input[k]`) and share softmax heads across positions.

As in the ENAS reference code, a position of a group joined by skips is
remembered as the controller's state after its last decision (its skip step),
and a position of a group whose inputs are picked (a cell's node) ends with a
step of its own that records that state and chooses nothing.
"""

import json

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
        self._by_name = {}
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
        parsed_names = [parsed for parsed in map(structured.parse_name, (hp.name for hp in space.space)) if parsed]
        skip_groups = {group for group, _, token in parsed_names if structured.skip_source(token) is not None}
        pick_groups = {group for group, _, token in parsed_names if structured.input_slot(token) is not None}
        open_position = None
        for hp in space.space:
            if _key(hp) in self._entries or isinstance(hp, HP.Fixed):
                continue
            parsed = structured.parse_name(hp.name)
            if open_position is not None and (parsed is None or parsed[:2] != open_position):
                self._close_node(open_position, positions)
                open_position = None
            # Keras Tuner keeps one hyperparameter per name and conditions: a name
            # declared again under other conditions is a decision of its own.
            namesakes = self._by_name.setdefault(hp.name, [])
            name = f"{hp.name}#{len(namesakes)}" if namesakes else hp.name
            group, index, token = parsed if parsed else (None, None, None)
            if group in skip_groups and index:
                self._close_first_position(group, positions)
            source = structured.skip_source(token) if parsed else None
            if source is not None:
                if not isinstance(hp, HP.Boolean):
                    raise TypeError(f"Skip hyperparameter {hp.name!r} must be a Boolean.")
                if source >= index:
                    raise ValueError(
                        f"Skip hyperparameter {hp.name!r} connects position {source} to position {index}: "
                        "a skip comes from an earlier position."
                    )
                key = (group, index)
                if key not in self._position_index:
                    self._anchor_earlier(group, index)
                    self._position_index[key] = self._add(Decision(f"{group}[{index}].skip", SKIP, size=index, group=group))
                entry = _Entry(hp, self._position_index[key], bit=source)
            elif parsed and structured.input_slot(token) is not None:
                if not isinstance(hp, HP.Choice) or list(hp.values) != list(range(index)):
                    raise ValueError(f"Input hyperparameter {hp.name!r} must be a Choice over range({index}).")
                self._anchor_earlier(group, index)
                decision = Decision(name, PICK, size=index, group=group, key=f"{group}.input")
                entry = _Entry(hp, self._add(decision), choices=list(range(index)))
            else:
                choices = _choices(hp, self.max_choices)
                size = len(choices) if choices is not None else self.num_bins
                key = f"{group}.{token}" if parsed else name
                decision = Decision(name, CATEGORICAL, size=size, key=key, group=group or "")
                entry = _Entry(hp, self._add(decision), choices=choices, bins=None if choices else size)
            self._entries[_key(hp)] = entry
            namesakes.append(entry)
            if parsed:
                # Its latest decision: a skip Boolean joins its position's decision, which
                # other positions' decisions may follow (skips declared source by source).
                positions[(group, index)] = max(positions.get((group, index), -1), entry.decision_index)
                self._positions.add((group, index))
                if group in pick_groups:
                    open_position = (group, index)
        if open_position is not None:
            self._close_node(open_position, positions)
        # A position's anchor is the controller's state after its last decision.
        for (group, index), last in positions.items():
            if (group, index) not in self._anchored and last >= first_new:
                self.decisions[last] = _with_anchor(self.decisions[last], index)
                self._anchored.add((group, index))
        return self.decisions[first_new:]

    def _close_first_position(self, group, positions):
        # As in the reference code, the first position of a group joined by skips ends with a
        # skip step that has no earlier position to choose: the LSTM steps once more, its
        # state is the position's anchor, and it reads the start token next.
        key = (group, 0)
        if key in self._position_index or key not in positions:
            return
        self._position_index[key] = self._add(Decision(f"{group}[0].skip", SKIP, size=0, group=group))
        positions[key] = self._position_index[key]

    def _close_node(self, position, positions):
        # As in the reference code's cells, a node ends with one more LSTM step, after its
        # last op: that state is the node's anchor, and the start token is read next.
        if position in self._anchored:
            return
        group, index = position
        positions[position] = self._add(Decision(f"{group}[{index}].anchor", ANCHOR, group=group, anchor=index))
        self._anchored.add(position)

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
        passed = [i for i, d in enumerate(self.decisions) if not d.chooses]

        def step(index):
            # The rollout must visit decisions in index order, as the batched graph that
            # scores them does; steps without a choice (anchors) are visited when passed.
            while passed and passed[0] < index:
                rollout.step(passed.pop(0))
            stepped[index] = rollout.step(index)

        for hp in space.space:
            filled.merge([hp])
            if not filled.is_active(hp):
                continue
            entry = self._entries.get(_key(hp))
            if entry is None:
                filled.values[hp.name] = hp.value if isinstance(hp, HP.Fixed) else hp.default
                continue
            if entry.decision_index not in stepped:
                step(entry.decision_index)
            filled.values[hp.name] = entry.value(stepped[entry.decision_index], controller.rng)
        for index in passed:
            rollout.step(index)  # The last node's anchor: taken, as every step without a choice is.
        return filled.values, list(rollout.finish().actions)

    def values_from_actions(self, actions, rng):
        """Values of every mapped hyperparameter from a full sample (no conditions checked).

        The fast path for spaces without conditional hyperparameters (the ENAS
        spaces), where every decision is made on every sample.
        """
        return {entry.hp.name: entry.value(actions[entry.decision_index], rng) for entry in self._entries.values()}

    def actions_from_values(self, values):
        """The actions that produce `values` (for trials not sampled by the controller)."""
        # Steps without a choice are always taken: an anchor's action is 0, an empty skip step's no bit.
        actions = [None if d.chooses else (0 if d.kind == ANCHOR else ()) for d in self.decisions]
        for name, value in values.items():
            # Of the hyperparameters of that name, the one whose conditions `values` meet.
            entry = next((e for e in self._by_name.get(name, ())
                          if all(condition.is_active(values) for condition in e.hp.conditions)), None)
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


def _key(hp):
    """A hyperparameter's identity in Keras Tuner: its name and the conditions it is declared under."""
    return hp.name, tuple(json.dumps(condition.get_config(), sort_keys=True, default=str) for condition in hp.conditions)


def _with_anchor(decision, index):
    return Decision(decision.name, decision.kind, decision.size, decision.key, decision.group, index)
