"""The controller's options: the papers' presets and the checks that name a bad value."""

import numbers

# Paper settings. "nas": Zoph & Le (2017); "enas_macro" / "enas_micro": the
# ENAS reference code's search scripts (Pham et al., 2018), see REFERENCE.md.
# They set no temperature (the paper's text gives 5). Not reproduced: the
# micro script's op_tanh_reduce=2.5 (op logits squashed to 1.1 / 2.5) and its
# fixed op-logit bias favouring the two separable convolutions.
PRESETS = {
    "nas": dict(num_layers=2, units=35, init_range=0.08, learning_rate=6e-4),
    "enas_macro": dict(
        num_layers=1, units=64, init_range=0.1, temperature=None, tanh_constant=1.5,
        entropy_weight=1e-4, skip_target=0.4, skip_weight=0.8, baseline_decay=0.99,
        learning_rate=1e-3, adam_beta1=0.0, adam_epsilon=1e-3,
    ),
    "enas_micro": dict(
        num_layers=1, units=64, init_range=0.1, temperature=None, tanh_constant=1.1,
        entropy_weight=1e-4, baseline_decay=0.99, learning_rate=3.5e-3,
        adam_beta1=0.0, adam_epsilon=1e-3,
    ),
}

# Options that may be None (off) or a positive number.
OPTIONAL_POSITIVE = ("temperature", "tanh_constant", "clip_norm")
FLOATS = ("init_range", "entropy_weight", "skip_target", "skip_weight", "baseline_decay",
          "learning_rate", "adam_beta1", "adam_beta2", "adam_epsilon")


def _check(name, value, ok, expected):
    if not ok:
        raise ValueError(f"Invalid `{name}`: expected {expected}, got {value!r}.")


def validate(config):
    """Checks a complete controller config; returns it with numbers as floats and flags as bools.

    Args:
        config: every `Controller` option (but `decisions`), by name.

    Returns:
        A new dict: the same options, normalised.

    Raises:
        ValueError: naming the option and the bad value.

    Example:

    >>> from keras_rlnas.controller import Controller
    >>> defaults = Controller.check_options()
    >>> validate({**defaults, "units": 64})["units"]
    64
    """
    c = dict(config)
    for name in FLOATS + OPTIONAL_POSITIVE:
        optional = name in OPTIONAL_POSITIVE
        is_number = isinstance(c[name], numbers.Real) and not isinstance(c[name], bool)
        _check(name, c[name], is_number or (optional and c[name] is None), "None or a number" if optional else "a number")
    for name in ("num_layers", "units"):
        _check(name, c[name], isinstance(c[name], int) and not isinstance(c[name], bool) and c[name] >= 1,
               "an int >= 1")
    _check("init_range", c["init_range"], c["init_range"] > 0, "a number > 0")
    for name in OPTIONAL_POSITIVE:
        _check(name, c[name], c[name] is None or c[name] > 0, "None or a number > 0")
    for name in ("entropy_weight", "skip_weight"):
        _check(name, c[name], c[name] >= 0, "a number >= 0")
    _check("skip_target", c["skip_target"], 0 < c["skip_target"] < 1, "a number in (0, 1)")
    for name in ("baseline_decay", "adam_beta1", "adam_beta2"):
        _check(name, c[name], 0 <= c[name] < 1, "a number in [0, 1)")
    for name in ("learning_rate", "adam_epsilon"):
        _check(name, c[name], c[name] > 0, "a number > 0")
    for name in FLOATS:
        c[name] = float(c[name])
    c["normalize_advantages"] = bool(c["normalize_advantages"])
    c["jit_compile"] = bool(c["jit_compile"])
    return c


def preset_or_options(controller_options, defaults):
    """`(preset, options)` from a tuner's `controller_options` argument.

    Args:
        controller_options: a preset's name (the paper's controller unchanged),
            or a dict of `Controller` options laid over `defaults`, or `None`.
        defaults: the tuner's own options, used where the dict says nothing.

    Returns:
        `(preset name or None, options dict)`.

    Raises:
        ValueError: an unknown preset name.

    Example:

    >>> preset_or_options("nas", {"units": 64})
    ('nas', {})
    >>> preset_or_options({"units": 32}, {"units": 64, "num_layers": 1})
    (None, {'units': 32, 'num_layers': 1})
    """
    if isinstance(controller_options, str):
        if controller_options not in PRESETS:
            raise ValueError(
                f"`controller_options` must be a dict of Controller options or one of "
                f"{sorted(PRESETS)}, got {controller_options!r}."
            )
        return controller_options, {}
    return None, {**defaults, **(controller_options or {})}
