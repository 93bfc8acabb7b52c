"""Final training of a found child: drop-path, auxiliary head, time budget, every space."""

import time

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import keras_rlnas
from keras_rlnas import export, retrain, time_budget
from keras_rlnas.layers.final_training import ScheduledDropPath
from keras_rlnas.spaces.enas_micro import MICRO_OPS


def tiny_micro(**kwargs):
    return keras_rlnas.ENASMicro((12, 12, 1), 3, num_cells=1, num_nodes=2, filters=4, **kwargs)


def test_drop_path_is_identity_at_inference_and_follows_its_schedule():
    x = np.ones((4000, 2, 2, 1), "float32")
    layer = ScheduledDropPath(0.5, total_steps=1000, seed=1)
    np.testing.assert_array_equal(layer(x, training=False), x)
    early = np.asarray(layer(x, training=True))  # step 1 of 1000: rate 0.0005
    assert np.mean(early[:, 0, 0, 0] == 0) < 0.01
    layer.step.assign(1000.0)
    late = np.asarray(layer(x, training=True))[:, 0, 0, 0]
    dropped = np.mean(late == 0)
    assert 0.45 < dropped < 0.55
    # Kept examples are scaled so the expectation is unchanged.
    np.testing.assert_allclose(late[late != 0], 2.0, rtol=1e-5)
    clone = ScheduledDropPath.from_config(layer.get_config())
    assert (clone.rate, clone.total_steps) == (0.5, 1000)
    with pytest.raises(ValueError, match="rate.*1.5"):
        ScheduledDropPath(1.5, total_steps=10)


def test_drop_path_follows_its_schedule_under_mixed_precision_past_float16s_range():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = ScheduledDropPath(0.5, total_steps=200_000, seed=1)
        x = np.ones((4000, 2, 2, 1), "float16")
        layer(x, training=False)
        layer.step.assign(199_999.0)  # The paper's micro schedule runs about 197,000 steps.
        late = np.asarray(layer(x, training=True), "float32")[:, 0, 0, 0]
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert np.all(np.isfinite(late))
    assert 0.45 < np.mean(late == 0) < 0.55


def test_micro_child_extras_leave_inference_unchanged():
    space = tiny_micro()
    encoding = space.random_encoding(3)
    plain = space.build_child(encoding)
    final = space.build_child(encoding, drop_path=0.4, total_steps=100, auxiliary_weight=0.4)
    assert len(final.outputs) == 2 and tuple(final.outputs[1].shape) == (None, 3)
    cells = space.parse(encoding)
    non_identity = sum(
        op != 0 for plan in space.cell_plan for pairs in cells[plan["kind"]] for _, op in pairs
    )
    drop_paths = [layer for layer in final.layers if isinstance(layer, ScheduledDropPath)]
    assert len(drop_paths) == non_identity > 0
    # Deeper cells drop more.
    assert drop_paths[0].rate < drop_paths[-1].rate <= 0.4
    # The full rate is reached by the last cell, as in the reference code.
    every_op_convolves = np.array(encoding)
    every_op_convolves[1::2] = MICRO_OPS.index("sepconv3x3")
    deepest = [layer for layer in space.build_child(every_op_convolves, drop_path=0.4, total_steps=100).layers
               if isinstance(layer, ScheduledDropPath)][-1]
    assert deepest.rate == pytest.approx(0.4)
    for layer in plain.layers:
        if layer.weights:
            final.get_layer(layer.name).set_weights(layer.get_weights())
    images = np.random.default_rng(0).normal(size=(5, 12, 12, 1)).astype("float32")
    np.testing.assert_allclose(final.predict(images, verbose=0)[0], plain.predict(images, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="total_steps"):
        space.build_child(encoding, drop_path=0.4)


def test_micro_retrain_trains_the_auxiliary_head_and_returns_one_output(tmp_path, tiny_images):
    x, y = tiny_images
    tuner = keras_rlnas.ENASTuner(tiny_micro(), seed=0, batch_size=32, directory=str(tmp_path), project_name="p", verbose=0)
    values = tuner.space.decode(tuner.space.random_encoding(5))
    seen = []
    watcher = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(dict(logs)))
    model = tuner.retrain(values, x, y, epochs=2, filters=6, validation_data=(x[:32], y[:32]), callbacks=[watcher])
    assert len(model.outputs) == 1 and model.predict(x[:4], verbose=0).shape == (4, 3)
    assert any(key.startswith("auxiliary") and key.endswith("loss") for key in model.history.history)
    # Callbacks written for a one-output child find its metrics under the usual names.
    assert len(seen) == 2 and seen[-1]["val_accuracy"] == seen[-1]["val_probabilities_accuracy"]
    assert model.history.history["accuracy"] == model.history.history["probabilities_accuracy"]
    assert len(model.history.epoch) == 2
    # The final network is wider everywhere, cells included.
    widths = {layer.name: layer.output.shape[-1] for layer in model.layers if layer.name.endswith("_output")}
    assert widths and min(widths.values()) >= 6
    # The drop-path layers travel with the saved model and the SavedModel serves the same predictions.
    expected = model.predict(x[:8], verbose=0)
    model.save(tmp_path / "final.keras")
    reloaded = keras.saving.load_model(tmp_path / "final.keras")
    np.testing.assert_allclose(reloaded.predict(x[:8], verbose=0), expected, atol=1e-5)
    served = tf.saved_model.load(export.export_model(model, str(tmp_path / "saved_model"), "saved_model"))
    np.testing.assert_allclose(served.serve(tf.constant(x[:8])).numpy(), expected, atol=1e-5)


def test_retrain_time_budget_bounds_the_run(tmp_path, tiny_images):
    x, y = tiny_images
    space = keras_rlnas.ENASMacro((12, 12, 1), 3, num_layers=3, filters=4)
    tuner = keras_rlnas.ENASTuner(space, seed=0, batch_size=32, directory=str(tmp_path), project_name="p", verbose=0)
    values = space.decode(space.random_encoding(2))
    # A budget already spent by the probe: one epoch, stopped after its first batch.
    model = tuner.retrain(values, x, y, epochs=5, time_budget=1e-3)
    assert len(model.history.epoch) == 1
    with pytest.raises(ValueError, match="time_budget.*-1"):
        tuner.retrain(values, x, y, epochs=1, time_budget=-1)
    with pytest.raises(ValueError, match="macro space has no cells"):
        tuner.retrain(values, x, y, epochs=1, drop_path=0.3)


@pytest.mark.parametrize(
    "seconds, max_epochs, plan",
    [
        (1000, 50, (9, 101)),  # 9.1 passes: 9 epochs a step longer than a pass fill the time
        (960, 50, (9, 96)),  # 8.7 passes: rounded up, the epochs are shortened to fit
        (1000, 5, (5, 100)),  # capped: epochs stay one pass long
        (30, 50, (1, 20)),  # less than a pass: one short epoch
        (-5, 50, (1, 1)),  # nothing left: one step, then the deadline stops it
    ],
)
def test_fill_budget_leaves_no_fraction_of_an_epoch_unused(seconds, max_epochs, plan):
    epochs, steps = time_budget.fill_budget(seconds, epoch_overhead=10, step_seconds=1.0, steps=100, max_epochs=max_epochs)
    assert (epochs, steps) == plan
    if plan[0] < max_epochs and seconds > 0:
        assert seconds - epochs * 10 - epochs * 1.0 < epochs * steps <= seconds - epochs * 10


def cosine(peak, low, progress):
    return low + 0.5 * (peak - low) * (1 + np.cos(np.pi * np.asarray(progress, float)))


def rate_recorder(rates):
    record = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: rates.append(float(record.model.optimizer.learning_rate))
    )
    return record


def test_a_time_budget_runs_past_a_short_plan_to_the_epoch_cap_annealed_by_steps(tiny_images, monkeypatch):
    x, y = tiny_images
    space = keras_rlnas.ENASMacro((12, 12, 1), 3, num_layers=3, filters=4)
    # The probe's plan: 2 epochs of 5 steps (over 3-step passes of the data). The run is faster than
    # planned, so it goes on past the plan to the epoch cap (3), its rate annealed by steps done.
    monkeypatch.setattr(time_budget, "fill_budget", lambda *args: (2, 5))
    rates = []
    model = retrain.retrain(space, space.decode(space.random_encoding(1)), x, y, epochs=3, batch_size=32,
                            time_budget=600, callbacks=[rate_recorder(rates)])
    assert len(model.history.epoch) == 3 and int(model.optimizer.iterations) == 15
    peak, low = space.training.learning_rate, space.training.min_learning_rate
    # A second of 600 moves the clock's progress by under 0.002: the steps lead.
    np.testing.assert_allclose(rates, cosine(peak, low, np.arange(15) / 15), rtol=2e-3)


def test_a_time_budget_the_epoch_cap_binds_anneals_over_the_capped_steps(tiny_images, monkeypatch):
    x, y = tiny_images
    space = keras_rlnas.ENASMacro((12, 12, 1), 3, num_layers=3, filters=4)
    monkeypatch.setattr(time_budget, "fill_budget", lambda *args: (3, 3))  # 3 whole passes: the cap
    rates = []
    model = retrain.retrain(space, space.decode(space.random_encoding(1)), x, y, epochs=3, batch_size=32,
                            time_budget=600, callbacks=[rate_recorder(rates)])
    assert len(model.history.epoch) == 3 and int(model.optimizer.iterations) == 9
    peak, low = space.training.learning_rate, space.training.min_learning_rate
    # The 9 capped steps end long before the deadline: they lead, one cosine step by step.
    np.testing.assert_allclose(rates, cosine(peak, low, np.arange(9) / 9), rtol=2e-3)


def test_a_time_budget_the_clock_ends_stops_at_the_deadline_annealed(tiny_images, monkeypatch):
    x, y = tiny_images
    space = keras_rlnas.ENASMacro((12, 12, 1), 3, num_layers=3, filters=4)
    # The probe plans a single step; the cap (10,000 epochs) is out of reach, so only the clock can end it.
    monkeypatch.setattr(time_budget, "fill_budget", lambda *args: (1, 1))
    child, validation = space.decode(space.random_encoding(1)), (x[:32], y[:32])
    # The probe and the child's traces take about three such runs: on a busy machine the budget must
    # leave time to train after them, so it is set from how fast this machine traces and trains now,
    # with room for the other test worker to take one core's worth of speed away in between.
    start = time.time()
    retrain.retrain(space, child, x, y, epochs=1, batch_size=32, validation_data=validation)
    rates, budget = [], max(20.0, 16 * (time.time() - start))
    start = time.time()
    model = retrain.retrain(space, child, x, y, epochs=10_000, batch_size=32, time_budget=budget,
                            validation_data=validation, callbacks=[rate_recorder(rates)])
    seconds = time.time() - start
    assert int(model.optimizer.iterations) > 1 and "val_accuracy" in model.history.history
    peak, low = space.training.learning_rate, space.training.min_learning_rate
    assert rates[0] > low + 0.5 * (peak - low)  # the cosine starts with fit, after the probe
    assert rates[-1] - low < 0.01 * (peak - low)  # the last step began at the deadline: the minimum
    # The stop comes a validation pass before the deadline, the pass itself within it: a step's lateness at most.
    assert seconds < budget + 1.0


@pytest.mark.parametrize("first_epoch_deadline, batches", [(1.5, 2), (3.5, 5), (None, 5)])
def test_a_stop_within_the_first_epoch_comes_by_its_own_earlier_deadline(monkeypatch, first_epoch_deadline, batches):
    # A clock that moves one second per batch: batches end at 1, 2, 3 (the first epoch), 4, 5, ...
    now = [0.0]
    monkeypatch.setattr(time_budget, "time", type("Clock", (), {"time": staticmethod(lambda: now[0])}))
    tick = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: now.__setitem__(0, now[0] + 1))
    stop = time_budget.StopAtDeadline(4.5, first_epoch_deadline=first_epoch_deadline)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(np.ones((6, 2), "float32"), np.zeros(6, "int32"), batch_size=2, epochs=5, verbose=0,
              callbacks=[tick, stop])
    # The earlier deadline binds within the first epoch only: past it, the stop waits for the later one.
    assert int(model.optimizer.iterations) == batches


def test_cosine_to_deadline_follows_the_clock_or_the_steps_whichever_leads():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.4), "sparse_categorical_crossentropy")
    x, y = np.ones((8, 2), "float32"), np.zeros(8, "int32")
    # Each reading of the clock moves it on 10 s: fit begins at 0, the 4 steps read 10, 20, 30, 40.
    ticks = iter(range(0, 1000, 10))
    schedule = time_budget.CosineToDeadline(deadline=40, minimum=0.1, clock=lambda: next(ticks))
    rates = []
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[schedule, rate_recorder(rates)])
    np.testing.assert_allclose(rates, cosine(0.4, 0.1, [0.25, 0.5, 0.75, 1.0]), rtol=1e-6)
    # Past the deadline the rate stays at the minimum; with a step count, the steps lead a slow clock.
    ticks = iter(range(0, 1000, 1))
    schedule = time_budget.CosineToDeadline(deadline=1000, minimum=0.0, peak=0.2, total_steps=4,
                                            clock=lambda: next(ticks))
    rates.clear()
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[schedule, rate_recorder(rates)])
    np.testing.assert_allclose(rates, cosine(0.2, 0.0, [0.001, 0.25, 0.5, 0.75]), rtol=1e-5)


def test_vanilla_retrain_works_through_the_same_module(tiny_images):
    x, y = tiny_images
    space = keras_rlnas.VanillaNAS(
        (12, 12, 1), 3, num_layers=2, filter_heights=(1, 3), filter_widths=(1, 3), num_filters=(4, 8)
    )
    hp = keras_tuner.HyperParameters()
    space.build(hp)
    model = retrain.retrain(space, hp, x, y, epochs=2, batch_size=32, cutout=4, validation_data=(x[:32], y[:32]))
    assert len(model.history.epoch) == 2 and "val_accuracy" in model.history.history
    assert model.predict(x[:4], verbose=0).shape == (4, 3)
    # One cosine cycle over all epochs: the rate has decayed to zero at the end.
    assert float(model.optimizer.learning_rate) < 1e-6
    # A batched dataset, with a budget the probe already spent: one epoch.
    dataset = tf.data.Dataset.from_tensor_slices(tiny_images).batch(32)
    model = retrain.retrain(space, hp.values, dataset, epochs=3, time_budget=1e-3)
    assert len(model.history.epoch) == 1
    with pytest.raises(ValueError, match="`filters` widens the ENAS spaces.*8"):
        retrain.retrain(space, hp, x, y, epochs=1, filters=8)
    with pytest.raises(ValueError, match="vanilla_nas space has no cells"):
        retrain.retrain(space, hp, x, y, epochs=1, drop_path=0.2)
    with pytest.raises(ValueError, match=r"\['cutout'\] augment arrays, got \{'cutout': 4\} with a dataset"):
        retrain.retrain(space, hp, dataset, epochs=1, cutout=4)


def test_widened_space_is_a_new_space():
    space = tiny_micro()
    wide = space.with_options(filters=8)
    assert (space.filters, wide.filters) == (4, 8)
    assert wide.cell_plan[0]["width"] == 8 and space.cell_plan[0]["width"] == 4
    assert wide.get_config() == {**space.get_config(), "filters": 8}
    with pytest.raises(ValueError, match=r"Unknown option\(s\) \['width'\] for ENASMicro"):
        space.with_options(width=8)
