"""`RLSearch` and `ControllerOracle` behave as Keras Tuner's RandomSearch does where users can tell."""

import configparser
import importlib.metadata
import os
import threading

import keras
import keras_tuner
import numpy as np
import pytest

import keras_rlnas
from keras_rlnas import ControllerOracle, RLSearch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _call_from_another_thread(fn, timeout=10):
    """`fn()`'s result, called from a new thread; fails if it blocks (a held oracle lock)."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", fn()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "The oracle's lock is still held: a second thread blocks."
    return result["value"]


def _tiny_build(hp):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(hp.Choice("units", [8, 16, 32, 64]))])
    model.compile("sgd", "mse")
    return model


class _FailingTuner(keras_tuner.Tuner):
    def run_trial(self, trial, *args, **kwargs):
        trial.hyperparameters.Choice("units", [8, 16, 32, 64])
        raise keras_tuner.errors.FailedTrialError("this model cannot be built")


def _oracle(**kwargs):
    options = dict(objective="val_loss", max_trials=10, seed=1, max_consecutive_failed_trials=3)
    oracle = ControllerOracle(**{**options, **kwargs})
    oracle.verbose = 0
    return oracle


# ------------------------------------------------------------ consecutive failures
@pytest.mark.parametrize("kind", ["plain Tuner", "Tuner subclass", "RLSearch"])
def test_consecutive_failures_raise_from_search_and_free_the_lock(tmp_path, kind):
    # Every model is over max_model_size: each trial fails with Keras Tuner's own error.
    common = dict(directory=str(tmp_path), project_name=kind.replace(" ", "_"), max_model_size=1)
    if kind == "plain Tuner":
        tuner = keras_tuner.Tuner(oracle=_oracle(), hypermodel=_tiny_build, **common)
    elif kind == "Tuner subclass":
        tuner = _FailingTuner(oracle=_oracle(), **common)
    else:
        tuner = RLSearch(_tiny_build, objective="val_loss", max_trials=10, seed=1, **common)
    tuner.oracle.verbose = 0
    reason = "cannot be built" if kind == "Tuner subclass" else "Oversized model"
    with pytest.raises(RuntimeError, match=f"(?s)Number of consecutive failures.*{reason}"):
        tuner.search(np.zeros((4, 2)), np.zeros(4), validation_data=(np.zeros((4, 2)), np.zeros(4)), verbose=0)
    oracle = tuner.oracle
    assert [t.status for t in oracle.trials.values()] == ["FAILED"] * 3
    assert not oracle.ongoing_trials  # The trial that hit the limit was ended in full.
    trial = _call_from_another_thread(lambda: oracle.create_trial("other"))
    assert trial.status == "STOPPED"


def test_the_failure_limit_is_raised_once_the_oracle_has_saved_its_trials(tmp_path):
    oracle = _oracle(max_consecutive_failed_trials=2)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.hyperparameters.Choice("units", [8, 16, 32])
    first, second = oracle.create_trial("a"), None
    first.status, first.message = "FAILED", "first failure"
    oracle.end_trial(first)  # One failure: under the limit, no error.
    second = oracle.create_trial("a")
    second.status, second.message = "FAILED", "second failure"
    with pytest.raises(RuntimeError, match="second failure"):
        oracle.end_trial(second)
    reloaded = _oracle(max_consecutive_failed_trials=2)
    reloaded._set_project_dir(str(tmp_path), "p")
    reloaded.reload()
    assert reloaded.end_order == [first.trial_id, second.trial_id]
    assert "consecutive failures" in reloaded.abort_message


# ------------------------------------------------------------------ construction
def test_rlsearch_without_a_hypermodel_is_refused_at_construction(tmp_path):
    with pytest.raises(ValueError, match="Received `hypermodel=None`"):
        RLSearch(objective="val_loss", max_trials=2, directory=str(tmp_path))

    class DeclaresItsOwnSpace(RLSearch):
        def run_trial(self, trial, *args, **kwargs):
            return {"val_loss": trial.hyperparameters.Float("x", 0, 1)}

    tuner = DeclaresItsOwnSpace(objective="val_loss", max_trials=2, directory=str(tmp_path), project_name="own")
    tuner.oracle.verbose = 0
    tuner.search()
    assert len(tuner.oracle.trials) == 2


def test_positional_arguments_follow_random_search_oracle_and_the_seed_counts():
    oracle = ControllerOracle("val_loss", 7, 42)
    assert (oracle.objective.name, oracle.max_trials, oracle.seed) == ("val_loss", 7, 42)

    def first_values(seed):
        oracle = ControllerOracle("val_loss", 5, seed)
        for i in range(6):
            oracle.hyperparameters.Int(f"x{i}", 0, 9)
        return [tuple(oracle.populate_space(str(t))["values"].values()) for t in range(3)]

    assert first_values(42) == first_values(42)
    assert first_values(0) == first_values(0)  # 0 is a seed, not "no seed".
    assert first_values(42) != first_values(43)


@pytest.mark.parametrize(
    "kwargs, named",
    [
        (dict(max_trials=0), "`max_trials`"),
        (dict(max_trials=2.5), "`max_trials`"),
        (dict(seed="1"), "`seed`"),
        (dict(seed=-1), "`seed` must be an int >= 0"),
        (dict(hyperparameters=42), "`hyperparameters`"),
        (dict(max_retries_per_trial=-1), "`max_retries_per_trial`"),
        (dict(max_consecutive_failed_trials=0), "`max_consecutive_failed_trials`"),
    ],
)
def test_bad_oracle_arguments_are_named_with_their_value(kwargs, named):
    with pytest.raises(ValueError, match=named) as error:
        ControllerOracle("val_loss", **kwargs)
    assert repr(next(iter(kwargs.values()))) in str(error.value)


# ----------------------------------------------------------------- exhaustion
def test_an_exhausted_space_stops_the_search_without_repeats(tmp_path):
    class TwoSwitches(RLSearch):
        def run_trial(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            return {"score": float(hp.Boolean("a")) + 2 * float(hp.Boolean("b"))}

    tuner = TwoSwitches(objective=keras_tuner.Objective("score", "max"), max_trials=15, seed=3,
                        directory=str(tmp_path))
    tuner.oracle.verbose = 0
    tuner.search()
    values = [tuple(sorted(t.hyperparameters.values.items())) for t in tuner.oracle.trials.values()]
    assert len(values) == 4 and len(set(values)) == 4


def test_a_policy_stuck_on_tried_values_falls_back_to_untried_ones_then_stops(tmp_path, caplog):
    oracle = ControllerOracle(keras_tuner.Objective("score", "max"), 10, 5, max_collisions=2)
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.hyperparameters.Choice("units", [8, 16, 32])
    sample = oracle.decision_map.sample
    # A policy that always proposes its first sample, as a collapsed one does.
    first = sample(oracle.hyperparameters, oracle.controller)
    oracle.decision_map.sample = lambda hp, controller, greedy=False: first
    seen = []
    while True:
        trial = oracle.create_trial("a")
        if trial.status == "STOPPED":
            break
        seen.append(trial.hyperparameters.get("units"))
        oracle.update_trial(trial.trial_id, {"score": 1.0})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert sorted(seen) == [8, 16, 32]
    # Every fallback was the stuck policy's, not a failing sampler's.
    assert "Controller sampling failed" not in caplog.text


# ---------------------------------------------------------------- update_trial
def test_update_trial_raises_as_keras_tuner_does_and_keeps_the_lock_free(tmp_path):
    oracle = _oracle()
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.hyperparameters.Choice("units", [8, 16])
    trial = oracle.create_trial("a")
    with pytest.raises(ValueError, match="Objective value missing"):
        oracle.update_trial(trial.trial_id, {"loss": 0.5})
    with pytest.raises(KeyError, match="nope"):
        oracle.update_trial("nope", {"val_loss": 0.5})
    # A heartbeat records nothing and needs no objective.
    oracle.update_trial(trial.trial_id, {keras_rlnas.distributed.HEARTBEAT_METRIC: 1.0})
    updated = _call_from_another_thread(lambda: oracle.update_trial(trial.trial_id, {"val_loss": 0.5}))
    assert updated.metrics.get_last_value("val_loss") == 0.5


# --------------------------------------------------------------- version safety
# Keras Tuner internals this package overrides or calls; a release that drops
# one breaks it quietly, so each is checked by name.
_ORACLE_PRIVATE_METHODS = (
    "_save_trial", "_random_values", "_compute_values_hash", "_check_consecutive_failures",
    "_get_trial_dir", "_get_oracle_fname", "_set_project_dir",
)
_ORACLE_PRIVATE_STATE = ("_id_to_hash", "_tried_so_far", "_retry_queue", "_seed_state", "_run_times", "_display")
_DISPLAY_STATE = ("trial_start", "search_start")
_TUNER_PRIVATE_METHODS = ("_try_build", "_build_and_fit_model", "_get_checkpoint_fname", "_is_worker", "_get_tuner_fname")


def test_the_keras_tuner_internals_we_rely_on_exist():
    version = keras_tuner.__version__
    missing = [f"Oracle.{name}" for name in _ORACLE_PRIVATE_METHODS if not callable(getattr(keras_tuner.Oracle, name, None))]
    oracle = keras_tuner.Oracle(objective="loss", max_trials=1)
    missing += [f"Oracle().{name}" for name in _ORACLE_PRIVATE_STATE if not hasattr(oracle, name)]
    display = getattr(oracle, "_display", None)
    missing += [f"Oracle()._display.{name}" for name in _DISPLAY_STATE if not hasattr(display, name)]
    missing += [f"Tuner.{name}" for name in _TUNER_PRIVATE_METHODS if not callable(getattr(keras_tuner.Tuner, name, None))]
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief, oracle_client

    for module, name in ((protos, "get_service_grpc"), (oracle_chief, "OracleServicer"), (oracle_client, "OracleClient")):
        if not hasattr(module, name):
            missing.append(f"{module.__name__}.{name}")
    assert not missing, (
        f"keras-tuner {version} lacks {missing}, which keras_rlnas overrides or calls. "
        "Pin keras-tuner to the range in setup.cfg or port keras_rlnas/oracle.py, "
        "keras_rlnas/tuners/rl_search.py, keras_rlnas/tuners/search_records.py and keras_rlnas/distributed/ "
        "to the new internals."
    )


def test_the_installed_keras_tuner_is_in_the_supported_range():
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    requirement = next(line for line in config["options"]["install_requires"].split("\n") if line.startswith("keras-tuner"))
    assert "<" in requirement, f"{requirement!r} has no upper bound: a release may drop the internals above."
    installed = tuple(int(p) for p in importlib.metadata.version("keras-tuner").split(".")[:2])
    assert (1, 4) <= installed < (1, 5), f"keras-tuner {installed} is outside the tested range {requirement}."


# ------------------------------------------------------------ hyperparameter types
def test_a_log_stepped_int_gives_ints_and_a_log_int_keeps_its_scale():
    oracle = ControllerOracle(keras_tuner.Objective("score", "max"), max_trials=None, seed=2, update_every=10**6)
    oracle.hyperparameters.Int("units", 8, 256, step=2, sampling="log")
    oracle.hyperparameters.Int("depth", 1, 32, sampling="log")
    oracle.hyperparameters.Float("rate", 0.0, 1.0)  # keeps the samples distinct
    samples = [oracle.populate_space(str(i))["values"] for i in range(200)]
    units = {values["units"] for values in samples}
    # Keras Tuner's Int casts min * step**i to int; a float breaks Dense(units).
    assert units <= {8, 16, 32, 64, 128, 256} and all(type(value) is int for value in units)
    # Keras Tuner draws about 0.45 of a log scale from 1 to 32 at or below 4; a uniform
    # choice among the 32 values would put 0.125 there.
    assert np.mean([values["depth"] <= 4 for values in samples]) > 0.3


class _PreprocessingHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential([keras.layers.Dense(3, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, x, y, **kwargs):
        # Keras Tuner's "tune the preprocessing" pattern: the model first meets the processed data.
        features = hp.Choice("features", [2, 3])
        return model.fit(x[:, :features], y, **kwargs)


def test_rlsearch_leaves_a_hypermodels_own_fit_to_meet_the_data_first(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(32, 4)).astype("float32"), np.arange(32) % 3
    tuner = RLSearch(_PreprocessingHyperModel(), objective="loss", max_trials=2, seed=0,
                     directory=str(tmp_path), project_name="p", update_every=1)
    tuner.search(x, y, epochs=1, verbose=0)
    statuses = [trial.status for trial in tuner.oracle.trials.values()]
    assert statuses == ["COMPLETED"] * 2


class _DeclaringTuner(keras_tuner.Tuner):
    """Keras Tuner's custom-tuner pattern: the space is declared while the trial runs."""

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        return {"score": float(hp.Choice("a", [0, 1, 2, 3]) + hp.Choice("b", [0, 10]))}


def test_a_trial_sampled_from_a_still_empty_space_is_learned_from_what_ran(tmp_path):
    oracle = ControllerOracle(keras_tuner.Objective("score", "max"), max_trials=3, seed=1, update_every=1)
    tuner = _DeclaringTuner(oracle=oracle, directory=str(tmp_path), project_name="p")
    tuner.oracle.verbose = 0
    tuner.search(verbose=0)
    first = oracle.updates[0]
    assert first["trials"] == ["0"] and oracle.trial_actions["0"] == []
    # Its actions are inferred from the default values it ran with, so the update has a gradient.
    assert first["log_prob"] < 0
