import math

import keras_tuner
import numpy as np
import pytest

from keras_rlnas import ControllerOracle, DecisionMap
from keras_rlnas.controller import Controller
from keras_rlnas.spaces.structured import earlier_input, skip_inputs


def declare_everything(hp):
    hp.Choice("activation", ["relu", "tanh", "gelu"])
    hp.Boolean("dropout")
    hp.Fixed("classes", 10)
    hp.Int("layers", 1, 3)
    hp.Int("units", 32, 512, step=32)
    hp.Int("wide", 1, 1000)
    hp.Float("lr", 1e-5, 1e-1, sampling="log")
    hp.Float("momentum", 0.5, 0.99)
    with hp.conditional_scope("activation", ["gelu"]):
        hp.Float("gelu_scale", 0.5, 2.0, step=0.5)
    for i in range(3):
        hp.Choice(f"layers[{i}].op", ["conv3", "conv5", "pool"])
        skip_inputs(hp, "layers", i)
    earlier_input(hp, "cell", 2, 0)
    earlier_input(hp, "cell", 3, 1)


def space():
    hp = keras_tuner.HyperParameters()
    declare_everything(hp)
    return hp


def test_every_hyperparameter_type_becomes_a_decision():
    decision_map = DecisionMap(num_bins=8)
    decisions = {d.name: d for d in decision_map.sync(space())}
    assert "classes" not in decisions
    assert decisions["activation"].size == 3 and decisions["dropout"].size == 2
    assert decisions["layers"].size == 3  # Int without step, few values: every value.
    assert decisions["units"].size == 16  # Stepped and few: every value.
    assert decisions["wide"].size == 8 and decisions["lr"].size == 8  # Too many: ordered bins.
    assert decisions["gelu_scale"].size == 4
    assert decisions["layers[2].skip"].kind == "skip" and decisions["layers[2].skip"].size == 2
    assert decisions["layers[0].op"].key == decisions["layers[2].op"].key == "layers.op"
    assert decisions["cell[3].input[1]"].kind == "pick"
    # Cell inputs 0 and 1 have no hyperparameter: anchor steps stand for them.
    assert decisions["cell[0].anchor"].kind == "anchor"
    # The first position of a group joined by skips ends with a skip step that chooses nothing.
    names = [d.name for d in decision_map.decisions]
    assert names.index("layers[0].skip") == names.index("layers[0].op") + 1
    assert decisions["layers[0].skip"].size == 0 and not decisions["layers[0].skip"].chooses
    assert decisions["layers[0].skip"].anchor == 0 and decisions["layers[0].op"].anchor is None


def test_sampled_values_are_valid_and_only_active_ones_are_set():
    hp_space = space()
    decision_map = DecisionMap()
    controller = Controller(decision_map.sync(hp_space), seed=0)
    lrs, seen_gelu = [], set()
    for _ in range(60):
        values, actions = decision_map.sample(hp_space, controller)
        filled = hp_space.copy()
        filled.values = dict(values)
        active = {hp.name for hp in hp_space.space if filled.is_active(hp)}
        assert set(values) == active
        seen_gelu.add("gelu_scale" in values)
        assert values["gelu_scale"] in (0.5, 1.0, 1.5, 2.0) if "gelu_scale" in values else True
        assert 32 <= values["units"] <= 512 and values["units"] % 32 == 0
        assert 1 <= values["wide"] <= 1000 and values["classes"] == 10
        assert values["cell[3].input[1]"] in (0, 1, 2)
        lrs.append(values["lr"])
        assert decision_map.actions_from_values(values) == actions
    assert seen_gelu == {True, False}
    # Bins follow the log scale: about as many draws below 1e-3 as above it.
    assert 1e-5 <= min(lrs) and max(lrs) <= 1e-1
    assert 0.25 < np.mean(np.array(lrs) < 1e-3) < 0.85


def test_a_name_declared_again_under_other_conditions_is_a_decision_of_its_own():
    # Keras Tuner keeps both, and RandomSearch draws each from its own range.
    hp = keras_tuner.HyperParameters()
    hp.Choice("model", ["mlp", "cnn"])
    with hp.conditional_scope("model", ["mlp"]):
        hp.Int("units", 32, 256, step=32)
    with hp.conditional_scope("model", ["cnn"]):
        hp.Choice("units", [8, 16])
    decision_map = DecisionMap()
    decisions = decision_map.sync(hp)
    assert [(d.name, d.size) for d in decisions] == [("model", 2), ("units", 8), ("units#1", 2)]
    controller = Controller(decisions, seed=0)
    seen = {"mlp": set(), "cnn": set()}
    for _ in range(40):
        values, actions = decision_map.sample(hp, controller)
        seen[values["model"]].add(values["units"])
        assert decision_map.actions_from_values(values) == actions
    assert seen["cnn"] and seen["cnn"] <= {8, 16}
    assert seen["mlp"] and all(units % 32 == 0 for units in seen["mlp"])


def test_skips_declared_source_by_source_anchor_every_position_once():
    hp = keras_tuner.HyperParameters()
    for i in range(4):
        hp.Choice(f"layers[{i}].op", ["conv", "pool"])
    for source in range(3):
        for i in range(source + 1, 4):
            hp.Boolean(f"layers[{i}].skip[{source}]")
    decisions = DecisionMap().sync(hp)
    anchors = {d.anchor: d.name for d in decisions if d.anchor is not None}
    assert anchors == {0: "layers[0].skip", 1: "layers[1].skip", 2: "layers[2].skip", 3: "layers[3].skip"}


def test_a_skip_from_a_later_position_is_refused_by_name():
    hp = keras_tuner.HyperParameters()
    hp.Choice("layers[1].op", ["conv3", "pool"])
    hp.Boolean("layers[1].skip[1]")
    with pytest.raises(ValueError, match=r"'layers\[1\].skip\[1\]' connects position 1 to position 1"):
        DecisionMap().sync(hp)


def run_search(directory, max_trials, score_fn, project="p", overwrite=True, seed=7, **oracle_kwargs):
    """A tuner whose trials cost nothing: the score is a function of the values."""

    class Tuner(keras_tuner.engine.base_tuner.BaseTuner):
        def run_trial(self, trial):
            return score_fn(trial.hyperparameters)

    oracle = ControllerOracle(objective=keras_tuner.Objective("score", "max"), max_trials=max_trials, seed=seed, **oracle_kwargs)
    tuner = Tuner(oracle=oracle, hypermodel=declare_everything, directory=str(directory), project_name=project, overwrite=overwrite)
    tuner.oracle.verbose = 0
    tuner.search()
    return tuner


def quadratic(hp):
    return {"score": -((hp.get("units") - 320) / 100.0) ** 2 + (hp.get("activation") == "tanh")}


def values_in_order(tuner):
    oracle = tuner.oracle
    return [oracle.trials[t].hyperparameters.values for t in oracle.start_order]


def test_resume_samples_exactly_what_an_uninterrupted_search_samples(tmp_path):
    straight = run_search(tmp_path, 14, quadratic, project="straight")
    run_search(tmp_path, 6, quadratic, project="resumed")
    resumed = run_search(tmp_path, 14, quadratic, project="resumed", overwrite=False)
    assert values_in_order(resumed) == values_in_order(straight)
    assert resumed.oracle.controller.num_updates == straight.oracle.controller.num_updates > 0
    np.testing.assert_array_equal(
        resumed.oracle.controller.weights()["attention/v"], straight.oracle.controller.weights()["attention/v"]
    )


def test_a_crash_mid_trial_resumes_with_the_same_trial(tmp_path):
    calls = {"n": 0}

    def crash_on_fourth(hp):
        calls["n"] += 1
        if calls["n"] == 4:
            raise keras_tuner.errors.FatalError("power cut")
        return quadratic(hp)

    # A policy update before the crash (after trial 2) and two after it.
    straight = run_search(tmp_path, 6, quadratic, project="straight", update_every=2)
    with pytest.raises(keras_tuner.errors.FatalError):
        run_search(tmp_path, 6, crash_on_fourth, project="crashed", update_every=2)
    resumed = run_search(tmp_path, 6, quadratic, project="crashed", overwrite=False, update_every=2)
    assert values_in_order(resumed) == values_in_order(straight)
    assert all(t.status == "COMPLETED" for t in resumed.oracle.trials.values())


def test_an_interrupt_while_a_trial_ends_leaves_the_oracle_saving(tmp_path, monkeypatch):
    tuner = run_search(tmp_path, 2, quadratic)
    oracle = tuner.oracle
    oracle.max_trials = 3
    trial = oracle.create_trial("tuner0")
    trial.status = "COMPLETED"

    def interrupted(self, trial):
        raise KeyboardInterrupt

    monkeypatch.setattr(keras_tuner.Oracle, "end_trial", interrupted)
    with pytest.raises(KeyboardInterrupt):
        oracle.end_trial(trial)
    # Ctrl-C in a notebook, then the search run again: its saves must still reach the disk.
    saved = tmp_path / "p" / "oracle.json"
    saved.unlink()
    oracle.save()
    assert saved.exists()


def test_failed_trials_get_a_penalty_and_the_search_goes_on(tmp_path):
    def fail_gelu(hp):
        if hp.get("activation") == "gelu":
            raise keras_tuner.errors.FailedTrialError("out of memory")
        return quadratic(hp)

    tuner = run_search(tmp_path, 16, fail_gelu, update_every=2, max_consecutive_failed_trials=16)
    oracle = tuner.oracle
    failed = [t for t in oracle.trials.values() if t.status == "FAILED"]
    assert failed and len(oracle.trials) == 16
    assert "out of memory" in failed[0].message
    assert all(t.trial_id in oracle.rewarded for t in oracle.trials.values())
    rewards = {trial: r for u in oracle.updates for trial, r in zip(u["trials"], u["rewards"])}
    # A failure is worth the lowest reward seen before it.
    for position, trial_id in enumerate(oracle.end_order):
        if oracle.trials[trial_id].status == "FAILED" and trial_id in rewards:
            earlier = [rewards[t] for t in oracle.end_order[:position] if t in rewards and oracle.trials[t].status == "COMPLETED"]
            assert rewards[trial_id] <= min(earlier) if earlier else rewards[trial_id] == 0.0


def test_invalid_trial_is_retried_with_the_same_values_and_rewarded_once(tmp_path):
    attempts = []

    def flaky(hp):
        attempts.append(dict(hp.values))
        if len(attempts) == 2:
            raise RuntimeError("transient")
        return quadratic(hp)

    tuner = run_search(tmp_path, 4, flaky, max_retries_per_trial=1, update_every=1)
    assert attempts[1] == attempts[2]
    assert len(tuner.oracle.trials) == 4
    assert tuner.oracle.controller.num_updates == 4
    assert all(t.status == "COMPLETED" for t in tuner.oracle.trials.values())


def test_nan_score_is_a_failed_trial_not_a_crash(tmp_path):
    tuner = run_search(tmp_path, 4, lambda hp: {"score": float("nan")} if hp.get("dropout") else quadratic(hp),
                       update_every=1, max_consecutive_failed_trials=10)
    statuses = {t.status for t in tuner.oracle.trials.values()}
    assert statuses <= {"COMPLETED", "FAILED"} and len(tuner.oracle.trials) == 4
    assert all(math.isfinite(u["reward"]) for u in tuner.oracle.updates)


def test_consecutive_failures_stop_the_search_without_holding_the_lock(tmp_path):
    def always_fail(hp):
        raise keras_tuner.errors.FailedTrialError("broken model")

    oracle = ControllerOracle(objective=keras_tuner.Objective("score", "max"), max_trials=10, seed=7,
                              max_consecutive_failed_trials=3)

    class Tuner(keras_tuner.engine.base_tuner.BaseTuner):
        def run_trial(self, trial):
            return always_fail(trial.hyperparameters)

    tuner = Tuner(oracle=oracle, hypermodel=declare_everything, directory=str(tmp_path), project_name="p")
    tuner.oracle.verbose = 0
    with pytest.raises(RuntimeError, match="(?s)consecutive failures.*broken model"):
        tuner.search()
    assert len(oracle.trials) == 3 and not oracle.ongoing_trials
    assert "consecutive failures" in oracle.abort_message
    # The lock was released: another thread can still call the oracle.
    import threading

    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("trial", oracle.create_trial("other")))
    thread.start()
    thread.join(timeout=10)
    assert result["trial"].status == "STOPPED"


def test_the_space_can_grow_after_the_first_trial(tmp_path):
    def growing(hp):
        hp.Choice("activation", ["relu", "tanh"])
        if hp.Int("depth", 1, 3) >= 2 or True:
            hp.Choice("extra_units", [8, 16])
        return {"score": float(hp.get("activation") == "tanh")}

    class Tuner(keras_tuner.engine.base_tuner.BaseTuner):
        def run_trial(self, trial):
            return growing(trial.hyperparameters)

    oracle = ControllerOracle(objective=keras_tuner.Objective("score", "max"), max_trials=8, seed=1, update_every=2)
    oracle.hyperparameters.Choice("activation", ["relu", "tanh"])
    tuner = Tuner(oracle=oracle, directory=str(tmp_path), project_name="grow", overwrite=True)
    tuner.search()
    names = [d.name for d in oracle.controller.decisions]
    assert names == ["activation", "depth", "extra_units"]
    later = [oracle.trials[t].hyperparameters.values for t in sorted(oracle.trials)][2:]
    assert all("extra_units" in v for v in later)
    # The first trial was sampled before the space grew: its new decisions are not its own.
    assert oracle.trial_actions["0"][1:] == []


def test_duplicates_are_not_trained_twice(tmp_path):
    def tiny(hp):
        hp.Choice("a", [0, 1])
        return {"score": float(hp.get("a"))}

    class Tuner(keras_tuner.engine.base_tuner.BaseTuner):
        def run_trial(self, trial):
            return tiny(trial.hyperparameters)

    oracle = ControllerOracle(objective=keras_tuner.Objective("score", "max"), max_trials=6, seed=0, update_every=2)
    tuner = Tuner(oracle=oracle, hypermodel=None, directory=str(tmp_path), project_name="dup", overwrite=True)
    oracle.hyperparameters.Choice("a", [0, 1])
    tuner.search()
    # Only two distinct values exist; the known rewards of repeats still train the controller.
    assert oracle.controller.num_updates > len(oracle.trials) // 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(update_every=0), "update_every.*0"),
        (dict(failure_reward=float("inf")), "failure_reward.*inf"),
        (dict(reward="best"), "Unknown reward 'best'"),
        (dict(controller_options={"units": -4}), "units.*-4"),
        (dict(controller_options={"unit": 4}), "Unknown controller option.*unit"),
        (dict(num_bins=1), "num_bins.*1"),
        (dict(num_bins=2.9), "num_bins.*2.9"),
        (dict(failure_reward="low"), "failure_reward.*'low'"),
        (dict(controller_options={"learning_rate": "1e-3"}), "learning_rate.*'1e-3'"),
        (dict(controller_options="enas"), "controller_options.*'enas'"),
    ],
)
def test_bad_arguments_name_the_bad_value(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ControllerOracle(objective=keras_tuner.Objective("score", "max"), max_trials=3, **kwargs)


def test_the_papers_controller_is_one_argument_away():
    oracle = ControllerOracle(objective=keras_tuner.Objective("score", "max"), controller_options="nas", seed=1)
    config = oracle.controller.config
    assert (config["num_layers"], config["units"], config["learning_rate"]) == (2, 35, 6e-4)
    # The oracle's own defaults (advantage scaling, clip, entropy bonus) are not laid over it.
    assert not config["normalize_advantages"] and config["clip_norm"] is None and config["entropy_weight"] == 0.0


def test_a_reward_that_cannot_score_the_objective_is_refused_before_any_trial():
    with pytest.raises(ValueError, match="'nas' reward needs a 'max' objective.*'val_loss'"):
        ControllerOracle(objective=keras_tuner.Objective("val_loss", "min"), reward="nas")


def test_a_failure_before_any_reward_is_recorded_but_not_learned_from(tmp_path):
    # Rewards here are negative: a 0 for the failure would be the best of all.
    ended = []

    def first_fails(hp):
        ended.append(hp.values)
        if len(ended) == 1:
            raise keras_tuner.errors.FailedTrialError("diverged")
        return quadratic(hp)

    oracle = run_search(tmp_path, 5, first_fails, update_every=1).oracle
    first = oracle.end_order[0]
    assert oracle.trials[first].status == "FAILED" and first in oracle.rewarded
    learned = [trial for update in oracle.updates for trial in update["trials"]]
    assert first not in learned and len([t for t in learned if t is not None]) == 4


def test_a_controller_that_keeps_failing_stops_the_search_by_name(tmp_path, monkeypatch):
    # One failed sample takes random values; failures in a row are not a silent random search.
    oracle = ControllerOracle(objective=keras_tuner.Objective("score", "max"), max_trials=10, seed=7,
                              max_consecutive_failed_trials=3)
    declare_everything(oracle.hyperparameters)
    calls = []

    def broken_sample(space, greedy=False):
        calls.append(1)
        raise FloatingPointError("a NaN in the controller")

    monkeypatch.setattr(oracle.learner, "sample", broken_sample)
    first, second = oracle.populate_space("0"), oracle.populate_space("1")
    assert first["status"] == second["status"] == "RUNNING" and len(calls) == 2
    with pytest.raises(RuntimeError, match="failed to sample 3 times in a row.*a NaN in the controller"):
        oracle.populate_space("2")
    # Served through create_trial (as to Keras Tuner's tuners and workers), the search stops with that reason.
    trial = oracle.create_trial("tuner0")
    assert trial.status == "STOPPED" and "a NaN in the controller" in oracle.abort_message
    # A sample that works in between starts the count again.
    monkeypatch.undo()
    oracle.abort_message = None
    oracle._sampling_failures = 2
    assert oracle.populate_space("3")["status"] == "RUNNING" and oracle._sampling_failures == 0


def test_a_reward_that_fails_for_one_trial_leaves_the_controller_sampling(tmp_path):
    failing = []

    def reward(trial, objective):
        if not failing:
            failing.append(trial.trial_id)
        if trial.trial_id == failing[0]:
            raise ValueError("no reward for this one")
        return float(trial.score)

    oracle = run_search(tmp_path, 6, quadratic, update_every=1, reward=reward).oracle
    assert "Reward failed: no reward for this one" in oracle.trials[failing[0]].message
    # Every later trial was the controller's sample, none a random fallback.
    assert set(oracle.trial_actions) == set(oracle.trials)


def test_nas_reward_preset_cubes_the_best_of_the_last_epochs():
    trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id="0")
    for step, value in enumerate([0.9, 0.1, 0.2, 0.5, 0.4, 0.3, 0.2]):
        trial.metrics.update("val_accuracy", value, step=step)
    trial.score = 0.9
    from keras_rlnas import rewards

    assert rewards.get("nas")(trial, keras_tuner.Objective("val_accuracy", "max")) == pytest.approx(0.5**3)
    with pytest.raises(ValueError, match="val_loss"):
        rewards.get("nas")(trial, keras_tuner.Objective("val_loss", "min"))
