"""RLSearch on real data: the one-line swap for keras_tuner.RandomSearch."""

import warnings

import keras
import keras_tuner
import numpy as np
import pytest

import keras_rlnas
from keras_rlnas.data import load_fashion_mnist
from keras_rlnas.tuners import MedianStoppingRule


@pytest.fixture(scope="module")
def fashion_slice():
    (x_train, y_train), _ = load_fashion_mnist()
    x = x_train[:1200, :, :, None].astype("float32") / 255.0
    y = y_train[:1200].astype("int32")
    return (x[:900], y[:900]), (x[900:], y[900:])


def build_model(hp):
    # No input shape, as users often write it: the model is built by its first data.
    model = keras.Sequential([keras.layers.Conv2D(hp.Choice("filters", [4, 8]), 3, strides=2, activation="relu")])
    if hp.Boolean("pool"):
        model.add(keras.layers.MaxPooling2D())
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(hp.Int("units", 16, 64, step=16), activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    lr = hp.Float("lr", 1e-3, 1e-2, sampling="log")
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_rlsearch_is_a_drop_in_for_random_search(tmp_path, fashion_slice, capsys):
    (x, y), (x_val, y_val) = fashion_slice
    kwargs = dict(hypermodel=build_model, objective="val_accuracy", max_trials=4, seed=3, directory=str(tmp_path))
    tuner = keras_rlnas.RLSearch(project_name="rl", update_every=2, **kwargs)
    tuner.search(x, y, epochs=2, validation_data=(x_val, y_val), verbose=0)
    tuner.results_summary(2)
    assert "Trial" in capsys.readouterr().out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        best_model = tuner.get_best_models(1)[0]
    # The checkpoint's optimizer state comes back with the weights (Keras would skip it).
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    assert int(best_model.optimizer.iterations) > 0
    _, accuracy = best_model.evaluate(x_val, y_val, verbose=0)
    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert accuracy == pytest.approx(best_trial.score, abs=1e-4)
    assert accuracy > 0.6  # Real learning on real images, far above 0.1 chance.
    assert len(tuner.oracle.updates) == 2
    best_hp = tuner.get_best_hyperparameters(1)[0]
    assert set(best_hp.values) >= {"filters", "pool", "units", "lr"}
    # Resume with overwrite=False: the finished trials stay, the search continues.
    resumed = keras_rlnas.RLSearch(project_name="rl", overwrite=False, update_every=2, **{**kwargs, "max_trials": 6})
    resumed.search(x, y, epochs=1, validation_data=(x_val, y_val), verbose=0)
    assert len(resumed.oracle.trials) == 6
    assert len(resumed.oracle.updates) == 3
    # The same arguments work for the stock tuner.
    random = keras_tuner.RandomSearch(project_name="random", **kwargs)
    assert random.oracle.max_trials == tuner.oracle.max_trials


def test_nan_loss_is_a_failed_trial_with_a_penalty(tmp_path, fashion_slice):
    (x, y), (x_val, y_val) = fashion_slice

    def diverging(hp):
        model = build_model(hp)
        # A step of 1e30 overflows the weights to inf / NaN within an epoch.
        lr = 1e30 if hp.Boolean("explode") else 1e-3
        model.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    # The rule records every trial's curve; with min_trials this high it stops none.
    tuner = keras_rlnas.RLSearch(diverging, objective="val_accuracy", max_trials=4, seed=5, update_every=1,
                                 max_consecutive_failed_trials=5, trial_stopping=MedianStoppingRule(min_trials=10),
                                 directory=str(tmp_path), project_name="nan")
    tuner.search(x[:300], y[:300], epochs=1, validation_data=(x_val, y_val), verbose=0)
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 4
    assert {trial.status for trial in trials} == {"FAILED", "COMPLETED"}
    for trial in trials:
        if trial.hyperparameters.get("explode"):
            assert trial.status == "FAILED" and "the loss became" in trial.message
            # A diverged trial's chance-level curve must not lower the median of finished ones.
            assert trial.trial_id not in tuner.objective_curves
        else:
            assert trial.status == "COMPLETED" and trial.trial_id in tuner.objective_curves
    assert all(np.isfinite(u["reward"]) for u in tuner.oracle.updates)


def test_bad_tuner_arguments_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="update_every.*-1"):
        keras_rlnas.RLSearch(build_model, objective="val_accuracy", update_every=-1, directory=str(tmp_path))


def build_with_learning_rate(hp):
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    optimizer = keras.optimizers.Adam(hp.Choice("learning_rate", [1e-2, 1e-7]))
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_median_stopping_ends_hopeless_trials_early_and_still_rewards_them(tmp_path, fashion_slice):
    (x, y), (x_val, y_val) = fashion_slice
    rule = MedianStoppingRule(min_trials=1, grace_epochs=1)
    tuner = keras_rlnas.RLSearch(
        build_with_learning_rate,
        objective="val_accuracy",
        max_trials=6,
        seed=1,
        update_every=10,  # no update: the samples depend on the seed alone
        trial_stopping=rule,
        directory=str(tmp_path),
    )
    tuner.search(x, y, epochs=3, validation_data=(x_val, y_val), batch_size=64, verbose=0)
    trials = tuner.oracle.trials
    rates = {trial_id: trial.hyperparameters.get("learning_rate") for trial_id, trial in trials.items()}
    assert sorted(set(rates.values())) == [1e-7, 1e-2]
    assert tuner.stopped_trials, "no trial was stopped"
    for trial_id, epochs in tuner.stopped_trials.items():
        assert rates[trial_id] == 1e-7 and epochs == 2
        assert len(tuner.objective_curves[trial_id]) == 2
        assert trials[trial_id].status == "COMPLETED"
        assert trials[trial_id].score == pytest.approx(max(tuner.objective_curves[trial_id]))
        assert trial_id in tuner.oracle.rewarded
    for trial_id, rate in rates.items():
        if rate == 1e-2:
            assert trial_id not in tuner.stopped_trials and len(tuner.objective_curves[trial_id]) == 3


def test_median_stopping_rule_arguments():
    rule = MedianStoppingRule(min_trials=2, grace_epochs=0)
    finished = [[0.3, 0.4], [0.5, 0.6]]
    assert rule.should_stop([1.0], finished, "min") and not rule.should_stop([0.2], finished, "min")
    assert not rule.should_stop([0.1], finished[:1], "max")  # too few finished trials
    with pytest.raises(ValueError, match="direction.*'maximize'"):
        rule.should_stop([0.1], finished, "maximize")
    with pytest.raises(ValueError, match="min_trials.*0"):
        MedianStoppingRule(min_trials=0)
    with pytest.raises(TypeError, match="trial_stopping"):
        keras_rlnas.RLSearch(build_with_learning_rate, objective="val_accuracy", trial_stopping="median")
