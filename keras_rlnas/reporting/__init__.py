"""Reports, figures, progress and TensorBoard summaries of a search; the command's project layout.

Public API:
    - `write_report(view, out_dir, ...)`: `report.md`, `trials.md` and PNG figures.
    - `ControllerSummaries(log_dir)`: TensorBoard scalars and histograms of the controller.
    - `SearchMonitor`, `monitored(TunerClass)`: progress line, summaries and a time budget.
    - `Project`: a `keras-rlnas` project directory; `spaces.SPACES`: the command's spaces.

Example:

```python
from keras_rlnas.reporting import spaces, write_report

tuner = keras_rlnas.RLSearch(keras_rlnas.VanillaNAS((28, 28, 1), 10), objective="val_accuracy", ...)
tuner.search(x, y, validation_data=(x_val, y_val), epochs=2)
write_report(spaces.get("vanilla").view(tuner), "results/report")
```
"""

from keras_rlnas.reporting import spaces
from keras_rlnas.reporting.decisions import decision_probabilities, policy_probabilities
from keras_rlnas.reporting.monitor import ProgressLine, SearchMonitor, monitored
from keras_rlnas.reporting.project import Project
from keras_rlnas.reporting.report import format_table, trial_rows, write_report
from keras_rlnas.reporting.spaces import ControllerView, ProjectError
from keras_rlnas.reporting.tensorboard import ControllerSummaries

__all__ = [
    "ControllerSummaries",
    "ControllerView",
    "Project",
    "ProjectError",
    "ProgressLine",
    "SearchMonitor",
    "decision_probabilities",
    "format_table",
    "monitored",
    "policy_probabilities",
    "spaces",
    "trial_rows",
    "write_report",
]
