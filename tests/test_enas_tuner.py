"""ENASTuner end to end on a tiny Fashion-MNIST slice."""

import itertools
import json
import os
import re

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from supernet_checks import assert_every_op_once_per_position

import keras_rlnas
from keras_rlnas.supernet import MacroSupernet
from keras_rlnas.tuners.final_choice import fine_tuning_batches
from keras_rlnas.tuners.search_inputs import OrderedBatches


@pytest.fixture(scope="module")
def data():
    (x, y), (x_val, y_val), _, info = keras_rlnas.data.load_arrays("fashion_mnist", validation_size=256, limit=1024)
    return (x[:384], y[:384]), (x_val, y_val), info


def make_tuner(directory, overwrite=True, **kwargs):
    space = keras_rlnas.ENASMacro((28, 28, 1), 10, num_layers=3, filters=6)
    options = dict(seed=0, controller_steps=2, controller_batch=4, derive_samples=4, batch_size=64, fine_tune_steps=0,
                   verbose=0)
    return keras_rlnas.ENASTuner(space, directory=str(directory), project_name="enas", overwrite=overwrite, **{**options, **kwargs})


def test_search_records_a_trial_per_epoch_and_resumes(tmp_path, data):
    (x, y), validation, _ = data
    tuner = make_tuner(tmp_path)
    before = tuner.controller.weights()["attention/v"].copy()
    tuner.search(x, y, validation_data=validation, epochs=2)
    assert len(tuner.oracle.trials) == 2
    # One traced train step served every sampled architecture.
    assert tuner.supernet.trace_counts["train"] == 1
    assert tuner.controller.num_updates == 4
    assert not np.array_equal(before, tuner.controller.weights()["attention/v"])
    best_hp = tuner.get_best_hyperparameters(1)[0]
    assert set(best_hp.values) >= {"layers[0].op", "layers[2].skip[1]"}
    assert tuner.get_best_models(1)[0].count_params() > 0
    # The last derived child holds the supernet's current weights.
    last = tuner.oracle.trials[tuner.oracle.start_order[-1]]
    child = tuner.load_model(last)
    expected = tuner.supernet.predict(validation[0][:8], tuner.space.encode(last.hyperparameters.values))
    np.testing.assert_allclose(child.predict(validation[0][:8], verbose=0), expected.numpy(), atol=1e-4)
    resumed = make_tuner(tmp_path, overwrite=False)
    # Restored by the constructor, as every Keras Tuner tuner is.
    assert resumed.epochs_done == 2 and resumed.controller.num_updates == 4
    view = resumed.controller_view()
    assert [step["step"] for step in view.history] == [0, 1, 2, 3] and len(view.trials) == 2
    np.testing.assert_array_equal(resumed.controller.weights()["attention/v"], tuner.controller.weights()["attention/v"])
    resumed.search(x, y, validation_data=validation, epochs=3)
    assert resumed.epochs_done == 3 and len(resumed.oracle.trials) == 3
    assert resumed.controller.num_updates == 6
    # A trial left half-recorded by a stop inside `_record_trial` (saved as running) is not handed out again.
    resumed.oracle.next_values = dict(resumed.oracle.trials[resumed.oracle.start_order[0]].hyperparameters.values)
    stale = resumed.oracle.create_trial(resumed.tuner_id)
    again = make_tuner(tmp_path, overwrite=False)
    assert again.oracle.trials[stale.trial_id].status == "INVALID"
    again.search(x, y, validation_data=validation, epochs=4)
    newest = again.oracle.trials[again.oracle.start_order[-1]]
    assert newest.trial_id != stale.trial_id and newest.status == "COMPLETED"
    assert again.get_best_models(1)[0].count_params() > 0


def test_a_resumed_search_draws_the_minibatches_an_uninterrupted_one_draws(tmp_path):
    x, y = tiny_data(count=96)
    validation = tiny_data(count=80)
    options = dict(derive_finalists=1, validation_batch_size=24)
    whole = tiny_tuner(tmp_path / "whole", **options)
    whole.search(x, y, validation_data=validation, epochs=3)
    halted = tiny_tuner(tmp_path / "halted", **options)
    halted.search(x, y, validation_data=validation, epochs=2)
    resumed = tiny_tuner(tmp_path / "halted", overwrite=False, **options)
    resumed.search(x, y, validation_data=validation, epochs=3)
    # The validation minibatches go on from where the halted search stopped, and the
    # generator of the training order and of the final choice is where it would be.
    assert resumed._validation_batches.state() == whole._validation_batches.state()
    assert resumed.rng.bit_generator.state == whole.rng.bit_generator.state


def search_with_final_choice(tmp_path, data, record, finalists, **options):
    """`(tuner, final trial, finalists' scores)` of one epoch's search that ends with a final choice."""
    (x, y), validation, _ = data
    tuner = make_tuner(tmp_path, derive_finalists=finalists, **options)
    tuner.search(x, y, validation_data=validation, epochs=1)
    epoch_trial, final_trial = (tuner.oracle.trials[t] for t in tuner.oracle.start_order)
    scores = getattr(tuner, record)["scores"]
    # The finalists, and the best child if it is not one of them.
    assert getattr(tuner, record)["epoch"] == 1 and len(scores) in (finalists, finalists + 1)
    assert final_trial.score == max(scores)
    # The final choice ranks first, even below the epochs' shared-weight scores.
    final_score, final_trial.score = final_trial.score, epoch_trial.score - 1.0
    assert tuner.oracle.get_best_trials(2) == [final_trial, epoch_trial]
    final_trial.score = final_score
    return tuner, final_trial, scores


def test_search_ends_with_the_best_fine_tuned_finalist(tmp_path, data):
    (x, y), validation, _ = data
    tuner, fine_tuned_trial, scores = search_with_final_choice(tmp_path, data, "fine_tuned", 3, fine_tune_steps=4)
    # The shared weights are those of the epoch, not of a fine-tuned child.
    saved = MacroSupernet(tuner.space)
    saved.load(os.path.join(tuner.project_dir, "supernet-000001.npz"))
    for kept, current in zip(saved.model.variables, tuner.supernet.model.variables):
        np.testing.assert_array_equal(np.asarray(kept), np.asarray(current))
    # The recorded child holds the winner's fine-tuned weights, not the shared ones.
    child = tuner.load_model(fine_tuned_trial)
    shared = tuner.supernet.build_child(tuner.space.encode(fine_tuned_trial.hyperparameters.values))
    assert any(
        not np.allclose(a, b) for a, b in zip(child.get_weights(), shared.get_weights())
    )
    # A resumed search that runs no epoch fine-tunes nothing again.
    resumed = make_tuner(tmp_path, overwrite=False, fine_tune_steps=4, derive_finalists=3)
    resumed.search(x, y, validation_data=validation, epochs=1)
    assert len(resumed.oracle.trials) == 2 and resumed.fine_tuned["scores"] == scores
    # A finished search resumed with fine-tuning newly asked for fine-tunes once.
    plain = make_tuner(tmp_path / "plain")
    plain.search(x, y, validation_data=validation, epochs=1)
    resumed = make_tuner(tmp_path / "plain", overwrite=False, fine_tune_steps=2, derive_finalists=2)
    # It compares the finished epoch's finalists, saved with the search, as the search itself would.
    candidates, _ = plain._finalist_candidates()
    assert len(candidates) > 1
    np.testing.assert_array_equal(resumed._finalist_candidates()[0], candidates)
    resumed.search(x, y, validation_data=validation, epochs=1)
    assert len(resumed.oracle.trials) == 2 and resumed.fine_tuned["epoch"] == 1
    assert len(resumed.fine_tuned["scores"]) == len(candidates)
    with pytest.raises(ValueError, match="fine_tune_steps.*-1"):
        make_tuner(tmp_path, fine_tune_steps=-1)


def test_search_ends_with_the_best_finalist_trained_from_scratch(tmp_path, data):
    (x, y), validation, _ = data
    tuner, trained_trial, scores = search_with_final_choice(tmp_path, data, "trained_finalists", 2, finalist_epochs=1)
    # The recorded child holds the weights it was scored with: its own, not the shared ones.
    child = tuner.load_model(trained_trial)
    predictions = child.predict(validation[0], verbose=0)
    assert np.mean(np.argmax(predictions, axis=-1) == validation[1]) == pytest.approx(trained_trial.score)
    shared = tuner.supernet.build_child(tuner.space.encode(trained_trial.hyperparameters.values))
    assert any(not np.allclose(a, b) for a, b in zip(child.get_weights(), shared.get_weights()))
    # A resumed search that runs no epoch trains no finalist again.
    resumed = make_tuner(tmp_path, overwrite=False, finalist_epochs=1, derive_finalists=2)
    resumed.search(x, y, validation_data=validation, epochs=1)
    assert len(resumed.oracle.trials) == 2 and resumed.trained_finalists["scores"] == scores
    assert resumed.oracle.get_best_trials(1)[0].trial_id == trained_trial.trial_id
    # Once the search goes on without the stage, the trials rank by score again.
    resumed = make_tuner(tmp_path, overwrite=False)
    resumed.search(x, y, validation_data=validation, epochs=2)
    assert resumed.oracle.final_trial_id is None
    assert resumed.oracle.get_best_trials(1)[0].score == max(t.score for t in resumed.oracle.trials.values())
    with pytest.raises(ValueError, match="fine_tune_steps=4.*finalist_epochs=1"):
        make_tuner(tmp_path, fine_tune_steps=4, finalist_epochs=1)
    with pytest.raises(ValueError, match="finalist_epochs.*-1"):
        make_tuner(tmp_path, finalist_epochs=-1)


def test_uniform_finalists_join_the_candidates_trained_from_scratch(tmp_path, data):
    (x, y), validation, _ = data
    tuner = make_tuner(tmp_path, derive_finalists=2, finalist_epochs=1, uniform_finalists=2)
    tuner.search(x, y, validation_data=validation, epochs=1)
    record = tuner.trained_finalists
    assert record["sources"].count("uniform") == 2
    assert len(record["sources"]) == len(record["scores"]) == len(record["architectures"])
    assert set(record["sources"]) <= {"derived", "best", "uniform"}
    # Each candidate trained is a different architecture, and the recorded child is the best scored.
    assert len({json.dumps(values, sort_keys=True) for values in record["architectures"]}) == len(record["scores"])
    final_trial = tuner.oracle.trials[tuner.oracle.start_order[-1]]
    assert final_trial.score == max(record["scores"])
    assert final_trial.hyperparameters.values == record["architectures"][int(np.argmax(record["scores"]))]
    # The stage's time estimate counts them: five candidates against three.
    with_uniform = tuner._final_choice_seconds()
    tuner.uniform_finalists = 0
    assert with_uniform == pytest.approx(tuner._final_choice_seconds() * 5 / 3) and with_uniform > 0
    with pytest.raises(ValueError, match="uniform_finalists=3.*finalist_epochs=0"):
        make_tuner(tmp_path, uniform_finalists=3)
    with pytest.raises(ValueError, match="uniform_finalists.*-1"):
        make_tuner(tmp_path, finalist_epochs=1, uniform_finalists=-1)


def test_uniform_sampler_and_retrain(tmp_path, data):
    (x, y), validation, _ = data
    tuner = make_tuner(tmp_path, sampler="uniform")
    tuner.search(x, y, validation_data=validation, epochs=1)
    assert tuner.controller.num_updates == 0 and len(tuner.oracle.trials) == 1
    model = tuner.retrain(tuner.get_best_hyperparameters(1)[0], x, y, epochs=1, filters=8, cutout=8, pad=2, flip=True)
    assert model.count_params() > tuner.get_best_models(1)[0].count_params()
    assert model.predict(validation[0][:4], verbose=0).shape == (4, 10)


def test_fair_sampler_trains_children_that_cover_every_op_each_step(tmp_path, data):
    (x, y), validation, _ = data
    tuner = make_tuner(tmp_path, sampler="fair")
    drawn = []
    fair_encodings = tuner.space.fair_encodings
    tuner.space.fair_encodings = lambda seed: drawn.append(fair_encodings(seed)) or drawn[-1]
    tuner.search(x, y, validation_data=validation, epochs=1)
    assert len(drawn) == len(x) // 64 and tuner.controller.num_updates == 0
    assert tuner.supernet.trace_counts["fair_train"] == 1 and tuner.supernet.trace_counts["train"] == 0
    for children in drawn:
        assert_every_op_once_per_position(tuner.space, children)
    assert len(tuner.oracle.trials) == 1 and tuner.history[-1]["omega_seconds_per_image"] > 0


@pytest.mark.parametrize("omega_sampler", [None, "uniform", "controller"])
def test_the_omega_phase_trains_uniform_children_by_default_and_the_controllers_in_the_papers_loop(
    tmp_path, omega_sampler
):
    x, y = tiny_data()
    options = {} if omega_sampler is None else {"omega_sampler": omega_sampler}
    tuner = tiny_tuner(tmp_path, controller_steps=2, derive_samples=3, **options)
    drawn, sampled = [], []
    random_encoding, sample_actions = tuner.space.random_encoding, tuner.learner.sample_actions
    tuner.space.random_encoding = lambda seed: drawn.append(random_encoding(seed)) or drawn[-1]
    tuner.learner.sample_actions = lambda greedy=False: sampled.append(greedy) or sample_actions(greedy=greedy)
    tuner.search(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=1)
    omega_steps, rewards, derived = 48 // 16, 2 * 2, 3
    assert tuner.controller.num_updates == 2 and tuner.sampler == "controller"
    if omega_sampler == "controller":  # the ENAS papers' loop: the controller picks every child
        assert tuner.omega_sampler == "controller" and drawn == []
        assert len(sampled) == omega_steps + rewards + derived
    else:
        assert tuner.omega_sampler == "uniform" and len(drawn) == omega_steps and len({tuple(e) for e in drawn}) > 1
        assert len(sampled) == rewards + derived  # the controller samples only for its rewards and the derivation


def test_a_fair_omega_phase_trains_fair_steps_while_the_controller_learns(tmp_path):
    x, y = tiny_data()
    tuner = tiny_tuner(tmp_path, omega_sampler="fair")
    tuner.search(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=1)
    assert tuner.supernet.trace_counts["fair_train"] == 1 and tuner.supernet.trace_counts["train"] == 0
    assert tuner.controller.num_updates == 1 and tuner.history[-1]["entropy"] > 0


def test_bad_arguments_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="sampler.*'greedy'"):
        make_tuner(tmp_path, sampler="greedy")
    with pytest.raises(ValueError, match="'fair' `sampler`.*ENASMacro or ENASMicro"):
        keras_rlnas.ENASTuner(keras_rlnas.VanillaNAS((28, 28, 1), 10), sampler="fair", directory=str(tmp_path))
    with pytest.raises(ValueError, match="'fair' `sampler` or `omega_sampler`.*ENASMacro or ENASMicro"):
        keras_rlnas.ENASTuner(keras_rlnas.VanillaNAS((28, 28, 1), 10), omega_sampler="fair", directory=str(tmp_path))
    with pytest.raises(ValueError, match="omega_sampler.*'greedy'"):
        make_tuner(tmp_path, omega_sampler="greedy")
    with pytest.raises(ValueError, match="omega_sampler='controller'.*sampler='uniform' has no controller"):
        make_tuner(tmp_path, sampler="uniform", omega_sampler="controller")
    with pytest.raises(ValueError, match="controller_steps.*-2"):
        make_tuner(tmp_path, controller_steps=-2)
    with pytest.raises(ValueError, match="controller_batch.*0"):  # not the default in disguise
        make_tuner(tmp_path, controller_batch=0)
    with pytest.raises(ValueError, match="seed.*1.5"):
        make_tuner(tmp_path, seed=1.5)
    with pytest.raises(TypeError, match=r"Unknown supernet option\(s\) \['learning_rat'\]"):
        make_tuner(tmp_path, supernet_options={"learning_rat": 0.1})
    with pytest.raises(ValueError, match="objective.*direction 'max'.*got Objective\\('val_loss', 'min'\\)"):
        make_tuner(tmp_path, objective=keras_tuner.Objective("val_loss", "min"))
    tuner = make_tuner(tmp_path, objective=keras_tuner.Objective("val_accuracy", "max"))
    assert tuner.oracle.objective.name == "val_accuracy" and tuner.oracle.objective.direction == "max"
    # A HyperModel is searched through its choice layers; VanillaNAS has none.
    with pytest.raises(ValueError, match="no LayerChoice or InputChoice"):
        keras_rlnas.ENASTuner(keras_rlnas.VanillaNAS((28, 28, 1), 10), directory=str(tmp_path))
    with pytest.raises(TypeError, match="function build"):
        keras_rlnas.ENASTuner(42, directory=str(tmp_path))
    with pytest.raises(ValueError, match="validation_data"):
        make_tuner(tmp_path).search(np.zeros((4, 28, 28, 1)), np.zeros(4), epochs=1)


# ------------------------------------------------------ Keras Tuner's search()
def tiny_tuner(directory, **kwargs):
    space = keras_rlnas.ENASMacro((8, 8, 1), 3, num_layers=3, filters=4)
    options = dict(seed=0, controller_steps=1, controller_batch=2, derive_samples=2, batch_size=16, verbose=0)
    return keras_rlnas.ENASTuner(space, directory=str(directory), project_name="tiny", **{**options, **kwargs})


def tiny_data(count=64, shape=(8, 8, 1), classes=3):
    rng = np.random.default_rng(0)
    return rng.random((count, *shape), dtype="float32"), rng.integers(0, classes, count)


class Recorder(keras.callbacks.Callback):
    def __init__(self, stop_after=None):
        super().__init__()
        self.calls, self.stop_after = [], stop_after

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", self.model))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, dict(logs)))
        if self.stop_after is not None and epoch + 1 >= self.stop_after:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))


def test_search_takes_random_search_arguments(tmp_path, capsys):
    x, y = tiny_data()
    tuner = tiny_tuner(tmp_path)
    recorder = Recorder()
    board = keras.callbacks.TensorBoard(str(tmp_path / "logs"))
    tuner.search(x, y, epochs=2, validation_split=0.25, shuffle=False, verbose=2, callbacks=[recorder, board])
    kinds = [call[0] for call in recorder.calls]
    assert kinds == ["train_begin", "epoch_begin", "epoch_end", "epoch_begin", "epoch_end", "train_end"]
    assert recorder.calls[0][1] is tuner.supernet.model
    logs = recorder.calls[2][2]
    assert {"loss", "accuracy", "val_accuracy", "controller_reward", "learning_rate"} <= set(logs)
    assert logs["val_accuracy"] == tuner.oracle.trials[tuner.oracle.start_order[0]].score
    phases = [logs[f"{phase}_seconds"] for phase in ("omega", "controller", "derivation")]
    assert min(phases) > 0 and logs["seconds"] == pytest.approx(sum(phases))
    printed = capsys.readouterr().out
    assert "Epoch 1/2" in printed and "Epoch 2/2" in printed and "val_accuracy" in printed
    # Keras Tuner's display times each recorded trial from its epoch's start, not from its recording.
    shown = [int(h) * 3600 + int(m) * 60 + int(sec) for h, m, sec in re.findall(r"Complete \[(\d+)h (\d+)m (\d+)s\]", printed)]
    assert len(shown) == 2
    assert all(abs(seconds - record["seconds"]) <= 1 for seconds, record in zip(shown, tuner.history))
    assert {"epoch_accuracy", "epoch_loss", "epoch_controller_reward"} <= _scalar_tags(tmp_path / "logs" / "train")
    assert "epoch_accuracy" in _scalar_tags(tmp_path / "logs" / "validation")
    tuner.search(x, y, epochs=3, validation_split=0.25, verbose=0)  # More epochs: the search goes on.
    assert tuner.epochs_done == 3 and not capsys.readouterr().out.count("Epoch")
    tuner.search_space_summary()
    tuner.results_summary(1)
    summaries = capsys.readouterr().out
    assert "Search space summary" in summaries and "layers[2].skip[1]" in summaries
    assert "Results summary" in summaries and f"Score: {tuner.oracle.get_best_trials(1)[0].score}" in summaries


def test_callbacks_can_stop_the_search(tmp_path):
    x, y = tiny_data()
    tuner = tiny_tuner(tmp_path)
    # No epoch can improve by 2: EarlyStopping stops after the second.
    stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", min_delta=2.0, patience=0)
    tuner.search(x, y, validation_data=(x[:16], y[:16]), epochs=5, callbacks=[stopper])
    assert tuner.epochs_done == 2 and stopper.stopped_epoch == 1
    tuner.search(x, y, validation_data=(x[:16], y[:16]), epochs=5, callbacks=[Recorder(stop_after=3)])
    assert tuner.epochs_done == 3


def grappler_switched_off():
    return tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)


class GrapplerSetting(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.switched_off = grappler_switched_off()


def test_grappler_false_switches_the_graph_optimiser_off_while_the_search_runs(tmp_path):
    x, y = tiny_data()
    assert not grappler_switched_off()  # TensorFlow's default in this test process
    seen = GrapplerSetting()
    tiny_tuner(tmp_path / "off", grappler=False).search(
        x, y, validation_data=(x[:16], y[:16]), epochs=1, callbacks=[seen]
    )
    assert seen.switched_off and not grappler_switched_off()
    with pytest.raises(ValueError, match="64 images but 60 labels"):  # restored when the search fails, too
        tiny_tuner(tmp_path / "fails", grappler=False).search(x, y[:60], validation_data=(x, y), epochs=1)
    assert not grappler_switched_off()
    tiny_tuner(tmp_path / "on").search(x, y, validation_data=(x[:16], y[:16]), epochs=1, callbacks=[seen])
    assert not seen.switched_off
    with pytest.raises(ValueError, match="grappler.*'no'"):
        tiny_tuner(tmp_path / "bad", grappler="no")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(sample_weight=np.ones(64)), TypeError, "sample_weight.*weigh every example"),
        (dict(class_weight={0: 1.0}), TypeError, "class_weight"),
        (dict(steps_per_epoch=2), TypeError, "one pass over the training data"),
        (dict(callbacks=[keras.callbacks.BackupAndRestore("/tmp/unused")]), TypeError, "resumes by itself"),
        (dict(workers=2), TypeError, r"Unexpected arguments \['workers'\]"),
        (dict(verbose=3), ValueError, "`verbose`.*3"),
        (dict(validation_split=1.5), ValueError, "`validation_split`.*1.5"),
        (dict(time_budget="600"), ValueError, "`time_budget`.*'600'"),
        (dict(time_budget=float("nan")), ValueError, "`time_budget`.*nan"),
    ],
)
def test_arguments_that_cannot_apply_are_refused_with_the_reason(tmp_path, kwargs, error, message):
    x, y = tiny_data()
    tuner = tiny_tuner(tmp_path)
    with pytest.raises(error, match=message):
        tuner.search(x, y, validation_data=(x, y), **kwargs)
    assert tuner.supernet is None  # Refused before anything was built or trained.


@pytest.mark.parametrize(
    "data, message",
    [
        (lambda x, y: (x, y[:60]), "64 images but 60 labels"),
        (lambda x, y: (x, np.where(y == 0, 3, y)), r"class indices in \[0, 3\) for a space built for 3 classes"),
        (lambda x, y: (x, y - 1), r"\[0, 3\).*-1"),
        (lambda x, y: (tiny_data(shape=(10, 10, 1))[0], y), "images are 10x10x1 but the space was built for 8x8x1"),
        (lambda x, y: (tiny_data(shape=(8, 8, 3))[0], y), "images are 8x8x3 but the space was built for 8x8x1"),
        (lambda x, y: (x, np.eye(3)[y]), r"integer class indices, one per image; got shape \(64, 3\)"),
    ],
)
def test_bad_data_is_reported_in_the_space_terms_before_the_first_step(tmp_path, data, message):
    x, y = tiny_data()
    bad_x, bad_y = data(x, y)
    tuner = tiny_tuner(tmp_path)
    with pytest.raises(ValueError, match=message):
        tuner.search(bad_x, bad_y, validation_data=(x, y))
    with pytest.raises(ValueError, match=message) as error:
        tuner.search(x, y, validation_data=(bad_x, bad_y))
    assert "validation" in str(error.value)
    assert tuner.supernet is None


def test_an_empty_dataset_is_refused_before_the_first_step(tmp_path):
    x, y = tiny_data()
    empty = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).take(0)
    tuner = tiny_tuner(tmp_path)
    with pytest.raises(ValueError, match="The training dataset yields no batches"):
        tuner.search(empty, validation_data=(x, y))
    assert tuner.supernet is None


def test_a_dataset_that_repeats_forever_is_refused_and_a_validation_dataset_is_rebatched(tmp_path):
    x, y = tiny_data()
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    tuner = tiny_tuner(tmp_path)
    with pytest.raises(ValueError, match="The training dataset repeats forever.*take"):
        tuner.search(batches.repeat(), validation_data=(x, y))
    with pytest.raises(ValueError, match="The validation dataset repeats forever"):
        tuner.search(batches, validation_data=batches.repeat())
    # Finalists trained from scratch need the training dataset's length: refused before the first epoch.
    unknown = batches.filter(lambda images, labels: True)
    finalists = tiny_tuner(tmp_path / "finalists", finalist_epochs=1)
    with pytest.raises(ValueError, match="finalist_epochs=1 .*cardinality is -2"):
        finalists.search(unknown, validation_data=(x, y))
    assert finalists.epochs_done == 0 and not finalists.oracle.trials
    # Rewards score `validation_batch_size` images, whatever the batches of the validation dataset.
    scored = []
    original = tuner._theta_phase

    def recording(validation_batches):
        def counted():
            for images, labels in validation_batches:
                scored.append(len(images))
                yield images, labels
        return original(counted())

    tuner._theta_phase = recording
    tuner.search(batches, validation_data=tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=1,
                 validation_batch_size=32)
    assert scored and set(scored) == {32}


def test_fine_tuning_minibatches_are_the_same_for_every_candidate_whatever_the_training_data():
    x, y = tiny_data(count=300)
    reshuffled = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(300, seed=1, reshuffle_each_iteration=True)
    for train in ((x, y), OrderedBatches((x, y), 16), reshuffled.batch(16)):
        batches = fine_tuning_batches(train, steps=4, seed=3)
        first = [labels.tolist() for _, labels in itertools.islice(batches(), 4)]
        again = [labels.tolist() for _, labels in itertools.islice(batches(), 4)]
        assert first == again, type(train).__name__
        # Of the fine-tuning size, not the search's (a dataset's 16, the omega phase's).
        assert [len(labels) for labels in first[:2]] == [128, 128], type(train).__name__


def test_learning_rate_schedulers_set_the_rate_and_plateau_reduction_is_refused(tmp_path):
    x, y = tiny_data()
    tuner = tiny_tuner(tmp_path)
    rates = []
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, rate: 0.001 * (epoch + 1))
    watcher = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: rates.append(float(tuner.supernet.optimizer.learning_rate.numpy())))
    tuner.search(x, y, validation_split=0.25, epochs=2, callbacks=[scheduler, watcher])
    assert rates == pytest.approx([0.001, 0.002])
    with pytest.raises(TypeError, match="ReduceLROnPlateau.*LearningRateScheduler"):
        tuner.search(x, y, validation_split=0.25, epochs=3, callbacks=[keras.callbacks.ReduceLROnPlateau()])
    # The epoch logs' 'accuracy' is the shared weights' training accuracy: not a name for the recorded score.
    with pytest.raises(ValueError, match="'accuracy' names a figure of the shared weights' training"):
        tiny_tuner(tmp_path, objective="accuracy")


def test_retraining_checks_arrays_as_the_search_does(tmp_path):
    x, y = tiny_data()
    tuner = tiny_tuner(tmp_path)
    values = tuner.space.decode(tuner.space.random_encoding(0))
    # Grey images without a channel axis, shifted and mirrored: as search() takes them.
    model = tuner.retrain(values, (x[..., 0] * 255).astype("uint8"), y, epochs=1, pad=1, flip=True)
    assert model.predict(x[:2], verbose=0).shape == (2, 3)
    with pytest.raises(ValueError, match="The training labels must be integer class indices, got dtype float64"):
        tuner.retrain(values, x, y + 0.5, epochs=1)
    with pytest.raises(ValueError, match=r"The validation labels must be class indices in \[0, 3\)"):
        tuner.retrain(values, x, y, epochs=1, validation_data=(x, y + 3))


def test_grey_images_without_a_channel_axis_are_taken(tmp_path):
    x, y = tiny_data()
    inputs = keras_rlnas.tuners.search_inputs.prepare(tiny_tuner(tmp_path).space, x[..., 0], y, validation_split=0.5)
    assert inputs.train[0].shape == (32, 8, 8, 1) and inputs.validation[0].shape == (32, 8, 8, 1)


@pytest.mark.parametrize("space", [keras_rlnas.ENASMicro, keras_rlnas.ENASMacro])
def test_spaces_whose_reductions_do_not_fit_the_image_are_refused(space):
    with pytest.raises(ValueError, match=r"\(4, 4, 1\) is too small.*1x1 map"):
        space((4, 4, 1), 10)
    assert space((5, 5, 1), 10).input_shape == (5, 5, 1)


def _scalar_tags(directory):
    import tensorflow as tf

    tags = set()
    for name in os.listdir(directory):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_derived_child_carries_its_own_recalibrated_statistics(tmp_path, data):
    (x, y), validation, _ = data
    tuner = make_tuner(tmp_path, derive_samples=6, derive_finalists=3)
    assert (tuner.batch_size, tuner.validation_batch_size) == (64, 128)
    tuner.search(x, y, validation_data=validation, epochs=1, validation_batch_size=32)
    last = tuner.oracle.trials[tuner.oracle.start_order[-1]]
    encoding = tuner.space.encode(last.hyperparameters.values)
    child = tuner.load_model(last)
    images = validation[0][:8]
    # Statistics of another child give other predictions; the derived child's own give the recorded child's.
    tuner.supernet.recalibrate(tuner._calibration_images, tuner.space.random_encoding(99))
    assert not np.allclose(child.predict(images, verbose=0), tuner.supernet.predict(images, encoding).numpy(), atol=1e-3)
    tuner.supernet.recalibrate(tuner._calibration_images, encoding)
    np.testing.assert_allclose(child.predict(images, verbose=0), tuner.supernet.predict(images, encoding).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="validation_batch_size.*0"):
        tuner.search(x, y, validation_data=validation, epochs=2, validation_batch_size=0)
    with pytest.raises(ValueError, match="derive_finalists.*0"):
        make_tuner(tmp_path, derive_finalists=0)


def test_controller_defaults_and_the_reference_preset_one_argument_away(tmp_path):
    tuner = make_tuner(tmp_path)
    assert tuner.controller.config["temperature"] is None
    assert tuner.controller.config["normalize_advantages"] is True
    assert (tuner.controller_steps, tuner.controller_batch) == (2, 4)
    reference = make_tuner(tmp_path, controller_options="enas_macro", controller_steps=None, controller_batch=None)
    assert reference.controller.config["tanh_constant"] == 1.5
    assert reference.controller.config["learning_rate"] == pytest.approx(1e-3)
    assert reference.controller.config["normalize_advantages"] is False
    with pytest.raises(ValueError, match="controller_options.*'fast'"):
        make_tuner(tmp_path, controller_options="fast")
