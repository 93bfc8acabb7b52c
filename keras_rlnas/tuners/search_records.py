"""What an ENAS search leaves in its project directory, and how it resumes from it.

Each ENAS epoch's derived child becomes a completed Keras Tuner trial holding
its weights, so `get_best_hyperparameters()`, `results_summary()` and
`get_best_models()` work as for any tuner. After each epoch the supernet's
arrays, the controller and the search's own state are saved, in an order that
lets a search killed at any point resume from its last finished epoch.
`SearchRecords` holds both for `ENASTuner`.
"""

import datetime
import glob
import os

import keras_tuner
import numpy as np

STATE_FILE = "enas_state.json"
# The supernet's arrays after epoch N; STATE_FILE names the one it commits.
SUPERNET_FILE = "supernet-{:06d}.npz"


class SearchRecords:
    """Trials and resume for `ENASTuner` (it reads the tuner's `space`, `supernet`, `learner` and search state)."""

    def _record_trial(self, values, score, model=None, final=False, began=None):
        """Records `values` as a completed trial holding `model`'s weights (the child on the shared weights by default).

        `final`: the search's final choice, ranked first until the next epoch's trial.
        `began`: when the work that found it began (`time.time()`), from which
        Keras Tuner's display times the trial and the search.
        """
        # The searched children build other hyperparameters at their defaults; recorded so, Keras Tuner
        # would otherwise fill them at random and report a model that was never searched.
        plain = {hp.name: hp.default for hp in getattr(self.space, "plain_hyperparameters", ())}
        self.oracle.next_values = {**plain, **values}
        trial = self.oracle.create_trial(self.tuner_id)
        if began is not None:
            _start_display_clock(self.oracle, trial.trial_id, began)
        encoding = self.space.encode(values)
        if model is None:
            child = self.supernet.build_child(encoding)
        else:  # saved as `load_model` builds it: without the trained model's optimizer
            child = self.space.build_child(encoding)
            child.set_weights(model.get_weights())
        child.save_weights(self._get_checkpoint_fname(trial.trial_id))
        self.oracle.update_trial(trial.trial_id, {self.oracle.objective.name: score}, step=self.epochs_done)
        trial.status = keras_tuner.engine.trial.TrialStatus.COMPLETED
        self.oracle.final_trial_id = trial.trial_id if final else None
        self.oracle.end_trial(trial)
        self.save()  # tuner0.json: lets overwrite=False find and reload the project.

    def run_trial(self, trial, *args, **kwargs):
        raise NotImplementedError("ENASTuner trains in search(); trials are recorded, not run.")

    def _get_checkpoint_fname(self, trial_id):
        return os.path.join(self.get_trial_dir(trial_id), "checkpoint.weights.h5")

    def load_model(self, trial):
        """The derived child of `trial`, holding the supernet's weights of that epoch (a plain Keras model)."""
        model = self.space.build_child(self.space.encode(trial.hyperparameters.values))
        model.load_weights(self._get_checkpoint_fname(trial.trial_id))
        return model

    def _save_state(self):
        root = self.project_dir
        supernet_file = SUPERNET_FILE.format(self.epochs_done)
        path = os.path.join(root, supernet_file)
        self.supernet.save(path + ".tmp")
        os.replace(path + ".tmp", path)
        # STATE_FILE goes last: it commits the epoch, its supernet file and the controller's.
        state = {
            "epochs_done": self.epochs_done, "history": self.history, "rng": self.rng.bit_generator.state,
            "fine_tuned": self.fine_tuned, "trained_finalists": self.trained_finalists,
            # The last derivation's finalists: a final choice after a resume compares them too.
            "finalists": [np.asarray(encoding).tolist() for encoding in self._finalists],
            "validation_order": (self._validation_batches.state() if self._validation_batches is not None
                                 else self._validation_order),
        }
        self.learner.save(root, STATE_FILE, extra={**state, "supernet_file": supernet_file})
        for old in glob.glob(os.path.join(root, SUPERNET_FILE.replace("{:06d}", "*"))):
            if os.path.basename(old) != supernet_file:
                os.remove(old)

    def reload(self):
        """Reloads the search: trials, supernet, controller, epochs and data order."""
        super().reload()
        state = self.learner.load(self.project_dir, STATE_FILE)
        if state is None:
            return
        self._build_supernet()
        self.supernet.load(os.path.join(self.project_dir, state["supernet_file"]))
        self.epochs_done = state["epochs_done"]
        self.history = state["history"]
        self.rng.bit_generator.state = state["rng"]
        self._validation_order = state.get("validation_order")
        self.fine_tuned = state.get("fine_tuned")
        self.trained_finalists = state.get("trained_finalists")
        self._finalists = [np.asarray(encoding, dtype=np.int32) for encoding in state.get("finalists", [])]


def _start_display_clock(oracle, trial_id, began):
    """Dates a recorded trial's start (and the search's, if earlier) back to `began` in Keras Tuner's display.

    The display starts a trial's clock when the trial is created; a recorded
    trial is created after its work, so it would print every trial as taking
    no time. It keeps no clock when it is silent (`verbose=0`).
    """
    display = getattr(oracle, "_display", None)  # an oracle client of a distributed search has none
    if display is None or trial_id not in display.trial_start:
        return
    start = datetime.datetime.fromtimestamp(began)
    display.trial_start[trial_id] = start
    if display.search_start is None or start < display.search_start:
        display.search_start = start
