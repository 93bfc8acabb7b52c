"""Reports, figures, progress and TensorBoard summaries of a search.

Public API:
    - `controller_view(tuner)`, `ControllerView`: what a report reads from any tuner.
    - `write_report(view, out_dir, ...)`: `report.md`, `trials.md` and PNG figures.
    - `ControllerSummaries(log_dir)`: TensorBoard scalars and histograms of the controller.
    - `SearchMonitor`, `monitored(TunerClass)`: progress line, summaries and a time budget.

Example:

```python
from keras_rlnas.reporting import controller_view, write_report

tuner = keras_rlnas.RLSearch(keras_rlnas.VanillaNAS((28, 28, 1), 10), objective="val_accuracy", ...)
tuner.search(x, y, validation_data=(x_val, y_val), epochs=2)
write_report(controller_view(tuner), "results/report")
```
"""

from keras_rlnas.reporting.decisions import decision_probabilities, policy_probabilities
from keras_rlnas.reporting.monitor import ProgressLine, SearchMonitor, monitored
from keras_rlnas.reporting.report import format_table, trial_rows, write_report
from keras_rlnas.reporting.tensorboard import ControllerSummaries
from keras_rlnas.reporting.view import ControllerView, controller_view, skip_rate

__all__ = [
    "ControllerSummaries",
    "ControllerView",
    "ProgressLine",
    "SearchMonitor",
    "controller_view",
    "decision_probabilities",
    "format_table",
    "monitored",
    "policy_probabilities",
    "skip_rate",
    "trial_rows",
    "write_report",
]
