"""What reports and TensorBoard read from a tuner: its trials, the controller's history and its policy.

A tuner shows itself to reports through one method, `controller_view()`,
returning a `ControllerView`. `controller_view(tuner)` calls it when the
tuner has it, and otherwise reads the same facts from what today's tuners
keep: a `ControllerOracle`'s `updates`, or an ENAS tuner's `history` (from
its project files when the tuner was only reopened).
"""

import json
import os

from keras_rlnas.spaces import structured

# Written by `ENASTuner` in its project directory; read only by the fallback below.
ENAS_STATE_FILE = "enas_state.json"
ENAS_CONTROLLER_FILE = "controller.npz"


class ControllerView:
    """A read-only view of a search: trials, controller history, policy.

    Attributes:
        trials: the Keras Tuner trials, in trial-id order.
        objective: the objective's name, e.g. `"val_accuracy"`.
        history: one dict per controller step (`step`, `reward`, `baseline`,
            `entropy`, `loss`, and for `RLSearch` the batch's `rewards` and `trials`).
        controller, decision_map, hyperparameters: the policy and the space,
            or `None` when the tuner has no controller (then no heat map).

    Example:

    >>> view = ControllerView([], "val_accuracy", [])
    >>> view.objective, view.controller is None
    ('val_accuracy', True)
    """

    def __init__(self, trials, objective, history, controller=None, decision_map=None, hyperparameters=None):
        self.trials = trials
        self.objective = objective
        self.history = history
        self.controller = controller
        self.decision_map = decision_map
        self.hyperparameters = hyperparameters


def controller_view(tuner):
    """The `ControllerView` of any Keras Tuner tuner.

    Asks `tuner.controller_view()` when the tuner defines it. Otherwise: a
    tuner whose oracle keeps controller `updates` (`ControllerOracle`, so
    `RLSearch`) gives those; a tuner with its own `controller` and `history`
    (`ENASTuner`) gives one step per ENAS epoch; any other tuner gives its
    trials and no controller.

    Example:

    ```python
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=2)
    write_report(controller_view(tuner), "results/report")
    ```
    """
    own = getattr(tuner, "controller_view", None)
    if callable(own):
        return own()
    oracle = tuner.oracle
    trials = sorted_trials(oracle)
    objective = oracle.objective.name
    if hasattr(oracle, "updates") and hasattr(oracle, "decision_map"):
        return ControllerView(trials, objective, list(oracle.updates), oracle.controller, oracle.decision_map,
                              oracle.hyperparameters)
    if getattr(tuner, "controller", None) is not None and hasattr(tuner, "history"):
        history = _enas_history(tuner)
        steps = [{"step": entry.get("epoch", i), **entry} for i, entry in enumerate(history)]
        return ControllerView(trials, objective, steps, tuner.controller, tuner.decision_map, tuner.hyperparameters)
    return ControllerView(trials, objective, [])


def _enas_history(tuner):
    history = list(tuner.history)
    state_path = os.path.join(tuner.project_dir, ENAS_STATE_FILE)
    if history or not os.path.exists(state_path):
        return history
    # A tuner reopened without searching restores its state only in `search()`:
    # read the saved history, and load the saved policy once for the heat map.
    with open(state_path) as f:
        history = json.load(f).get("history", [])
    controller_path = os.path.join(tuner.project_dir, ENAS_CONTROLLER_FILE)
    if os.path.exists(controller_path) and not getattr(tuner, "_report_loaded", False):
        tuner.controller.load(controller_path)
        tuner._report_loaded = True
    return history


def sorted_trials(oracle):
    """The oracle's trials in trial-id order (`"2"` before `"10"`)."""
    return [oracle.trials[k] for k in sorted(oracle.trials, key=lambda t: (len(t), t))]


def skip_rate(values):
    """Fraction of the `skip[j]` hyperparameters that are on in `values`, or `None` without any.

    Example:

    >>> skip_rate({"layers[1].skip[0]": True, "layers[2].skip[0]": False, "lr": 0.1})
    0.5
    """
    bits = []
    for name, value in values.items():
        parsed = structured.parse_name(name)
        if parsed and structured.skip_source(parsed[2]) is not None:
            bits.append(bool(value))
    return sum(bits) / len(bits) if bits else None
