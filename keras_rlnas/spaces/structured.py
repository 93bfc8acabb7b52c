"""Structured NAS decisions expressed as ordinary Keras Tuner hyperparameters.

A NAS space is a sequence of *positions* (the layers of a network, the nodes of a
cell) grouped by name. A hyperparameter that belongs to position `i` of group
`g` is named `g[i].token`, for example `layers[3].filter_height`. Two tokens
have a structural meaning:

- `g[i].skip[j]` (a Boolean, `j < i`): position `j` feeds position `i`. The
  `ControllerOracle` samples all skip inputs of a position at once with
  attention over the controller's hidden states at the earlier positions
  (Zoph & Le, 2017).
- `g[i].input[k]` (a Choice over `0 .. i-1`): the `k`-th input of position `i`
  is one earlier position, chosen by softmax attention (ENAS cells).

Every other oracle sees plain Booleans and Choices, so the same space can be
searched with `keras_tuner.RandomSearch` too. The controller also uses the
names to share one softmax head between the same token of different positions
(`layers[*].filter_height`), which lets a space grow by whole layers without
forgetting what the controller learned.
"""

import re

_NAME = re.compile(r"^(?P<group>[A-Za-z_][\w/]*)\[(?P<index>\d+)\]\.(?P<token>.+)$")
_SKIP = re.compile(r"^skip\[(?P<source>\d+)\]$")
_INPUT = re.compile(r"^input\[(?P<slot>\d+)\]$")


def position_name(group, index, token):
    """Name of the hyperparameter `token` of position `index` of `group`.

    Example:

    >>> position_name("layers", 2, "filter_width")
    'layers[2].filter_width'
    """
    return f"{group}[{int(index)}].{token}"


def parse_name(name):
    """Splits a hyperparameter name into `(group, index, token)`.

    Returns `None` for a name that follows no position convention.

    Example:

    >>> parse_name("cell/normal[3].input[1]")
    ('cell/normal', 3, 'input[1]')
    >>> parse_name("learning_rate") is None
    True
    """
    match = _NAME.match(name)
    if match is None:
        return None
    return match["group"], int(match["index"]), match["token"]


def skip_source(token):
    """The earlier position a `skip[j]` token refers to, or `None`."""
    match = _SKIP.match(token)
    return None if match is None else int(match["source"])


def input_slot(token):
    """The slot number of an `input[k]` token, or `None`."""
    match = _INPUT.match(token)
    return None if match is None else int(match["slot"])


def skip_inputs(hp, group, index, default=False):
    """Declares the skip inputs of position `index` and returns the chosen ones.

    Args:
        hp: a `keras_tuner.HyperParameters`.
        group: the name of the sequence of positions, e.g. `"layers"`.
        index: this position; positions `0 .. index-1` are candidates.
        default: default value of every skip Boolean.

    Returns:
        The sorted list of earlier positions that feed this one.

    Example:

    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> skip_inputs(hp, "layers", 2)
    []
    >>> sorted(hp.values)
    ['layers[2].skip[0]', 'layers[2].skip[1]']
    """
    chosen = []
    for source in range(int(index)):
        if hp.Boolean(position_name(group, index, f"skip[{source}]"), default=default):
            chosen.append(source)
    return chosen


def earlier_input(hp, group, index, slot, default=None):
    """Declares the `slot`-th input of position `index`: one earlier position.

    Args:
        hp: a `keras_tuner.HyperParameters`.
        group: the name of the sequence of positions, e.g. `"normal_cell"`.
        index: this position (at least 1); positions `0 .. index-1` are candidates.
        slot: which input of the position this is (0, 1, ...).
        default: default choice; the latest earlier position when `None`.

    Returns:
        The chosen earlier position, an int.

    Example:

    >>> import keras_tuner
    >>> hp = keras_tuner.HyperParameters()
    >>> earlier_input(hp, "normal_cell", 3, 0)
    2
    """
    index = int(index)
    if index < 1:
        raise ValueError(f"Position {index} of group {group!r} has no earlier position to pick.")
    values = list(range(index))
    default = values[-1] if default is None else default
    return hp.Choice(position_name(group, index, f"input[{slot}]"), values, default=default)
