"""What reports and TensorBoard read from a tuner: its trials, the controller's history and its policy.

Tuners show themselves to reports through one method, `controller_view()`,
returning a `ControllerView` (`ENASTuner` has it, and so has a
`ControllerOracle` for `RLSearch` or any tuner it drives).
`controller_view(tuner)` asks whichever of the tuner and its oracle has it.
"""

from keras_rlnas.controller.learner import ControllerView, trials_in_order
from keras_rlnas.spaces import structured


def controller_view(tuner):
    """The `ControllerView` of any Keras Tuner tuner.

    Asks `tuner.controller_view()`, then `tuner.oracle.controller_view()`;
    any other tuner gives its trials and no controller.

    Example:

    ```python
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=2)
    write_report(controller_view(tuner), "results/report")
    ```
    """
    if callable(getattr(tuner, "controller_view", None)):
        return tuner.controller_view()
    if callable(getattr(tuner.oracle, "controller_view", None)):
        return tuner.oracle.controller_view()
    return ControllerView(sorted_trials(tuner.oracle), tuner.oracle.objective.name, ())


def sorted_trials(oracle):
    """The oracle's trials in the order they were created (`trials_in_order`)."""
    return trials_in_order(oracle.trials)


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
