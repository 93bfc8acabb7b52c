"""The oracle of searches that train in `search()` and record what they find as trials.

`ENASTuner` derives one architecture per epoch from its own sampler; Keras
Tuner's results (`get_best_trials`, `results_summary`, `get_best_models`)
read them from this oracle as from any other.
"""

import keras_tuner

from keras_rlnas.tuners import search_inputs


class RecordingOracle(keras_tuner.Oracle):
    """Records the architecture derived after each ENAS epoch as a Keras Tuner trial.

    The trial of a search's final choice among its finalists
    (`keras_rlnas.tuners.final_choice`) ranks first in `get_best_trials`
    until another epoch is recorded: its score, after training of the
    child's own, is not on the scale of the epochs' shared-weight scores.

    The tuner sets `next_values` before each `create_trial`; a trial created
    without them is stopped at once, as Keras Tuner's oracles stop a search
    whose space is exhausted. A trial a stopped search left half-recorded is
    marked invalid on reload, never retried.
    """

    def __init__(self, objective, seed=None):
        super().__init__(objective=objective, max_trials=None, seed=seed)
        self.next_values = None
        self.final_trial_id = None

    def get_best_trials(self, num_trials=1):
        best = super().get_best_trials(num_trials=len(self.trials))
        final = [trial for trial in best if trial.trial_id == self.final_trial_id]
        return (final + [trial for trial in best if trial.trial_id != self.final_trial_id])[:num_trials]

    def get_state(self):
        return {**super().get_state(), "final_trial_id": self.final_trial_id}

    def set_state(self, state):
        super().set_state(state)
        self.final_trial_id = state.get("final_trial_id")

    def reload(self):
        super().reload()
        # A trial left running was being recorded when the search stopped; its epoch runs again and records
        # a trial of its own. Keras Tuner would hand the old one out again, with the old epoch's values.
        for trial_id in self._retry_queue:
            trial = self.trials[trial_id]
            trial.status = keras_tuner.engine.trial.TrialStatus.INVALID
            self._save_trial(trial)
        self._retry_queue = []

    def populate_space(self, trial_id):
        if self.next_values is None:
            return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED, "values": None}
        values, self.next_values = self.next_values, None
        return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING, "values": values}


def recorded_objective(objective):
    """The `keras_tuner.Objective` a search records, direction "max".

    Args:
        objective: the name of a score to maximise, or a `keras_tuner.Objective`
            of direction "max"; not a loss, nor a figure of the shared weights'
            training in the epoch logs.

    Raises:
        ValueError: naming the objective that cannot be recorded.
    """
    name, shown = None, repr(objective)
    if isinstance(objective, str) and objective:
        name = objective
    elif isinstance(objective, keras_tuner.Objective):
        if objective.direction == "max":
            name = objective.name
        shown = f"Objective({objective.name!r}, {objective.direction!r})"  # its repr names neither
    if name in search_inputs.TRAINING_LOG_KEYS:
        raise ValueError(
            f"`objective` {name!r} names a figure of the shared weights' training in the epoch logs; name the "
            "recorded validation score otherwise, e.g. 'val_accuracy'."
        )
    if name is not None and not name.endswith("loss"):
        return keras_tuner.Objective(name, "max")
    raise ValueError(
        f"`objective` must be the name of the score ENAS maximises, the children's validation accuracy (e.g. "
        f"'val_accuracy'), or a keras_tuner.Objective with direction 'max'; a loss is not recorded; got {shown}."
    )


__all__ = ["RecordingOracle", "recorded_objective"]
