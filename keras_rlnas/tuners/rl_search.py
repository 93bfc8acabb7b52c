"""`RLSearch`: `keras_tuner.RandomSearch`'s signature, driven by a learning controller."""

import json
import logging
import math
import os

import keras
import keras_tuner
import tensorflow as tf

from keras_rlnas.distributed import DistributedSearch
from keras_rlnas.oracle import ControllerOracle
from keras_rlnas.tuners.trial_stopping import TrialStoppingCallback

logger = logging.getLogger(__name__)


class RLSearch(DistributedSearch, keras_tuner.Tuner):
    """Keras Tuner search whose trials are proposed by a REINFORCE-trained RNN controller.

    A drop-in replacement for `keras_tuner.RandomSearch`: same arguments, same
    `search()`, `results_summary()`, `get_best_models()`, plus the controller's
    options. A trial whose loss turns NaN or that runs out of memory is marked
    FAILED and costs the controller a penalty reward; the search goes on.
    With `trial_stopping` (e.g. `MedianStoppingRule()`) a trial falling behind
    the finished ones at the same epoch stops early; it is scored and
    rewarded with the best objective it reached.
    It runs as chief or worker in Keras Tuner's distributed mode, started by
    `python -m keras_rlnas.distributed` (see `docs/distributed.md`).

    Args:
        hypermodel: a `keras_tuner.HyperModel` or a function `build(hp) -> Model`.
        objective: the metric to optimise, e.g. `"val_accuracy"`.
        max_trials: number of trials.
        seed: seed of the controller's weights and sampling.
        hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: as for
            `keras_tuner.RandomSearch`.
        update_every, reward, failure_reward, controller_options, num_bins,
        max_collisions, max_staleness, trial_timeout, lost_trial_retries: see
            `keras_rlnas.ControllerOracle`.
        trial_stopping: `None`, or a rule such as
            `keras_rlnas.MedianStoppingRule()` that stops hopeless
            trials after an epoch. The rule compares with the trials this
            tuner finished in this process (`objective_curves`).
        **kwargs: `keras_tuner.Tuner` arguments (`directory`, `project_name`,
            `overwrite`, `executions_per_trial`, `distribution_strategy`, ...).

    Example:

    ```python
    import keras, keras_tuner, keras_rlnas

    def build(hp):
        model = keras.Sequential([
            keras.layers.Dense(hp.Choice("units", [32, 64, 128]), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    tuner = keras_rlnas.RLSearch(build, objective="val_accuracy", max_trials=20)
    tuner.search(x, y, epochs=2, validation_split=0.2)
    best_model = tuner.get_best_models(1)[0]
    ```
    """

    def __init__(
        self,
        hypermodel=None,
        objective=None,
        max_trials=10,
        seed=None,
        hyperparameters=None,
        tune_new_entries=True,
        allow_new_entries=True,
        max_retries_per_trial=0,
        max_consecutive_failed_trials=3,
        update_every=4,
        reward="objective",
        failure_reward=None,
        controller_options=None,
        num_bins=10,
        max_collisions=20,
        max_staleness=None,
        trial_timeout=300.0,
        lost_trial_retries=1,
        trial_stopping=None,
        **kwargs,
    ):
        if hypermodel is None and type(self).run_trial is RLSearch.run_trial:
            # keras_tuner.Tuner's own check passes: RLSearch overrides run_trial.
            raise ValueError(
                "Received `hypermodel=None`: RLSearch builds every trial's model with the hypermodel. "
                "Pass one, or subclass RLSearch and override `run_trial` to declare the space there."
            )
        oracle = ControllerOracle(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
            update_every=update_every,
            reward=reward,
            failure_reward=failure_reward,
            controller_options=controller_options,
            num_bins=num_bins,
            max_collisions=max_collisions,
            max_staleness=max_staleness,
            trial_timeout=trial_timeout,
            lost_trial_retries=lost_trial_retries,
        )
        if trial_stopping is not None and not callable(getattr(trial_stopping, "should_stop", None)):
            raise TypeError(
                f"`trial_stopping` must have a `should_stop(curve, finished_curves, direction)` "
                f"method, like MedianStoppingRule, got {trial_stopping!r}."
            )
        self.trial_stopping = trial_stopping
        #: trial id -> the objective after each epoch (last execution), for trial stopping.
        self.objective_curves = {}
        #: trial id -> the epoch after which trial stopping ended it.
        self.stopped_trials = {}
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)

    def run_trial(self, trial, *args, **kwargs):
        callbacks = list(kwargs.pop("callbacks", [])) + [keras.callbacks.TerminateOnNaN()]
        stopping = None
        if self.trial_stopping is not None:
            finished = [self.objective_curves[key] for key in sorted(self.objective_curves)]
            stopping = TrialStoppingCallback(self.trial_stopping, self.oracle.objective, finished)
            callbacks.append(stopping)
        try:
            results = super().run_trial(trial, *args, callbacks=callbacks, **kwargs)
        except tf.errors.ResourceExhaustedError as error:
            raise keras_tuner.errors.FailedTrialError(f"Out of memory: {error.message}") from error
        for result in results:
            history = getattr(result, "history", None) or {}
            losses = history.get("loss", [])
            if any(not math.isfinite(v) for v in losses):
                raise keras_tuner.errors.FailedTrialError(f"Trial {trial.trial_id}: the loss became {losses[-1]}.")
        # Only finished trials set the median: a diverged one's curve would lower it.
        if stopping is not None and stopping.curve:
            self.objective_curves[trial.trial_id] = list(stopping.curve)
        if stopping is not None and stopping.stopped_after is not None:
            self.stopped_trials[trial.trial_id] = stopping.stopped_after
            logger.info(
                "Trial %s stopped after epoch %d: behind the median trial.",
                trial.trial_id,
                stopping.stopped_after,
            )
        return results

    def _build_and_fit_model(self, trial, *args, **kwargs):
        # A HyperModel with its own `fit` may preprocess the data first: the model must not meet the raw data.
        own_fit = type(self.hypermodel).fit is not keras_tuner.HyperModel.fit
        self._fit_sample = None if own_fit else _first_examples(args, kwargs)
        try:
            return super()._build_and_fit_model(trial, *args, **kwargs)
        finally:
            self._fit_sample = None

    def _try_build(self, hp):
        model = super()._try_build(hp)
        if getattr(self, "_fit_sample", None) is not None and self.distribution_strategy is None:
            _build_training_state(model, *self._fit_sample)
        elif getattr(self, "_loading_trial", None) is not None and getattr(model, "optimizer", None) is not None \
                and not model.optimizer.built:
            # The checkpoint holds the optimizer's state too: built, the optimizer takes it back
            # (the model trains on from where its trial stopped), where Keras skips it with a warning.
            build_config = self._get_build_config_fname(self._loading_trial.trial_id)
            if not model.built and os.path.exists(build_config):
                # What Keras Tuner would do next (a `Sequential` without an input shape), done first.
                with open(build_config) as f:
                    model.build_from_config(json.load(f))
            if model.built:
                model.optimizer.build(model.trainable_variables)
        return model

    def load_model(self, trial):
        """The model of `trial` at its best epoch, with its optimizer's state."""
        self._loading_trial = trial
        try:
            return super().load_model(trial)
        finally:
            self._loading_trial = None

    def on_search_end(self):
        super().on_search_end()
        message = getattr(self.oracle, "abort_message", None)
        if message:
            raise RuntimeError(f"The search stopped early: {message}")


def _first_examples(args, kwargs):
    """Two examples `(x, y)` of the arrays given to `fit`, or `None` for other inputs."""
    x = args[0] if args else kwargs.get("x")
    y = args[1] if len(args) > 1 else kwargs.get("y")
    if x is None or y is None:
        return None
    leaves = keras.tree.flatten(x) + keras.tree.flatten(y)
    if not all(hasattr(a, "shape") and hasattr(a, "__getitem__") and len(a.shape) for a in leaves):
        return None
    return keras.tree.map_structure(lambda a: a[:2], x), keras.tree.map_structure(lambda a: a[:2], y)


def _build_training_state(model, x, y):
    """Creates the optimizer's and the compiled metrics' variables outside `fit`.

    Created inside the first traced training step instead, they leave that
    step's graph alive after the model is gone (TensorFlow 2.21, Keras 3.15):
    about 4 MB a trial, most of the memory a long search gains. Best effort:
    a model this cannot prepare trains as it would have.
    """
    if getattr(model, "optimizer", None) is None:
        return
    try:
        y_pred = model(x, training=False)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.compute_loss(x=x, y=y, y_pred=y_pred)
        model.compute_metrics(x, y, y_pred)
        model.reset_metrics()
    except Exception as error:
        logger.debug("Training state left to fit(): %s", error)
