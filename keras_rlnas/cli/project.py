"""A search project directory, as the `keras-rlnas` command lays it out.

```
DIR/run.json        what was searched: space and its options, data set, budget, seed, each call
DIR/search/         the Keras Tuner project (oracle.json, controller-NNNNNN.npz, trial_*/)
DIR/logs/           TensorBoard: logs/controller and logs/<trial>/execution0
DIR/report/         report.md, trials.md and the PNG figures
DIR/best/           the retrained best child: model.keras, architecture.json, retrain.json
DIR/export/         model.keras or saved_model/, with architecture.json
```
"""

import contextlib
import io
import json
import os

from keras_rlnas.cli import recipes
from keras_rlnas.cli.errors import ProjectError

RUN_FILE = "run.json"
PROJECT_NAME = "search"
FORMAT = 1


class Project:
    """Reads a project directory made by `keras-rlnas search`.

    Args:
        directory: the `--directory` of the search.

    Raises:
        ProjectError: when the directory or its `run.json` is missing or unreadable.

    Example:

    ```python
    project = Project("results/fashion")
    tuner = project.open_tuner()
    values, trial = project.best_values(tuner)
    ```
    """

    def __init__(self, directory):
        self.directory = str(directory)
        if not os.path.isdir(self.directory):
            raise ProjectError(f"No such project directory {self.directory!r}.")
        path = os.path.join(self.directory, RUN_FILE)
        if not os.path.exists(path):
            raise ProjectError(
                f"{self.directory!r} is not a keras-rlnas project: it has no {RUN_FILE} "
                f"(made by `keras-rlnas search --directory {self.directory}`)."
            )
        try:
            with open(path) as f:
                self.run = json.load(f)
        except (OSError, ValueError) as error:
            raise ProjectError(f"Cannot read {path!r}: {error}") from error
        self.recipe = recipes.get(self.run["space"])
        self._space = None

    @staticmethod
    def write_run(directory, run):
        """Writes `run.json` (atomically) into `directory`."""
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, RUN_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump({"format": FORMAT, **run}, f, indent=2, default=_json_default)
        os.replace(path + ".tmp", path)

    def update_run(self, **changes):
        self.run.update(changes)
        self.write_run(self.directory, self.run)

    def path(self, *parts):
        return os.path.join(self.directory, *parts)

    @property
    def space(self):
        """The search space (HyperModel), rebuilt from `run.json`."""
        if self._space is None:
            info = self.run["dataset_info"]
            self._space = self.recipe.make_space(info["input_shape"], info["num_classes"], self.run["space_options"])
        return self._space

    def open_tuner(self):
        """The search's tuner, reloaded from `DIR/search` (nothing is trained or written)."""
        search = self.run["search"]
        if not os.path.isdir(self.path(PROJECT_NAME)):
            raise ProjectError(f"{self.directory!r} has no search results ({PROJECT_NAME}/ is missing).")
        # Keras Tuner prints "Reloading Tuner from ..." on stdout.
        with contextlib.redirect_stdout(io.StringIO()):
            return self.recipe.make_tuner(
                self.space, seed=search["seed"], directory=self.directory, project_name=PROJECT_NAME,
                overwrite=False, max_trials=search["max_trials"], options=search.get("tuner_options", {}),
            )

    def best_values(self, tuner):
        """Hyperparameter values of the best trial, and the trial."""
        # Keras Tuner fills the list up with trials still running or failed when too few completed.
        trials = [trial for trial in tuner.oracle.get_best_trials(1) if trial.status == "COMPLETED"]
        if not trials:
            raise ProjectError(f"{self.directory!r} has no completed trial yet; run or resume the search.")
        return dict(trials[0].hyperparameters.values), trials[0]

    def retrain_info(self):
        """What `retrain` recorded (`DIR/best/retrain.json`), or `None`."""
        path = self.path("best", "retrain.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)


def dataset_info_dict(info):
    """The JSON-able facts of a `keras_rlnas.data.DatasetInfo` that a project keeps."""
    return {
        "name": info.name,
        "input_shape": list(info.input_shape),
        "num_classes": int(info.num_classes),
        "num_train": int(info.num_train),
        "num_validation": int(info.num_validation),
        "source": str(info.source),
    }


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"{value!r} of type {type(value).__name__} cannot be written to {RUN_FILE}.")
