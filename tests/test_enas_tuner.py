"""ENASTuner end to end on a tiny Fashion-MNIST slice."""

import numpy as np
import pytest

import keras_rlnas


@pytest.fixture(scope="module")
def data():
    (x, y), (x_val, y_val), _, info = keras_rlnas.data.load_arrays("fashion_mnist", validation_size=256, limit=1024)
    return (x[:384], y[:384]), (x_val, y_val), info


def make_tuner(directory, overwrite=True, **kwargs):
    space = keras_rlnas.ENASMacro((28, 28, 1), 10, num_layers=3, filters=6)
    options = dict(seed=0, controller_steps=2, controller_batch=4, derive_samples=4, batch_size=64, verbose=0)
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
    resumed.search(x, y, validation_data=validation, epochs=3)
    assert resumed.epochs_done == 3 and len(resumed.oracle.trials) == 3
    assert resumed.controller.num_updates == 6


def test_uniform_sampler_and_retrain(tmp_path, data):
    (x, y), validation, _ = data
    tuner = make_tuner(tmp_path, sampler="uniform")
    tuner.search(x, y, validation_data=validation, epochs=1)
    assert tuner.controller.num_updates == 0 and len(tuner.oracle.trials) == 1
    model = tuner.retrain(tuner.get_best_hyperparameters(1)[0], x, y, epochs=1, filters=8, cutout=8)
    assert model.count_params() > tuner.get_best_models(1)[0].count_params()
    assert model.predict(validation[0][:4], verbose=0).shape == (4, 10)


def test_bad_arguments_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="sampler.*'greedy'"):
        make_tuner(tmp_path, sampler="greedy")
    with pytest.raises(ValueError, match="controller_steps.*-2"):
        make_tuner(tmp_path, controller_steps=-2)
    with pytest.raises(TypeError, match="ENASMacro or ENASMicro"):
        keras_rlnas.ENASTuner(keras_rlnas.VanillaNAS((28, 28, 1), 10), directory=str(tmp_path))
    with pytest.raises(ValueError, match="validation_data"):
        make_tuner(tmp_path).search(np.zeros((4, 28, 28, 1)), np.zeros(4), epochs=1)
