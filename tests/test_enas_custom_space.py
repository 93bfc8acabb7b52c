"""ENASTuner over a user's own model built with LayerChoice / InputChoice."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from choice_models import build, data
from supernet_checks import WeightsAtStart, assert_training_started_from

import keras_rlnas
from keras_rlnas import export
from keras_rlnas.layers import InputChoice, LayerChoice

HERE = os.path.dirname(os.path.abspath(__file__))
# A serving process: TensorFlow alone loads the SavedModel; this package is never imported.
SERVE = """
import sys
import keras
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
np.save(sys.argv[2] + ".out.npy", served.serve(tf.constant(np.load(sys.argv[2]))).numpy())
assert not [name for name in sys.modules if name.startswith("keras_rlnas")]
"""


def make_tuner(directory, overwrite=True, **kwargs):
    options = dict(seed=0, controller_steps=2, controller_batch=2, derive_samples=3, derive_finalists=2,
                   fine_tune_steps=0, batch_size=16, validation_batch_size=16, verbose=0)
    return keras_rlnas.ENASTuner(build, directory=str(directory), project_name="custom", overwrite=overwrite,
                                 **{**options, **kwargs})


def test_search_records_plain_children_exports_them_and_resumes(tmp_path):
    x, y = data(64)
    tuner = make_tuner(tmp_path)
    tuner.search(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=2)
    assert len(tuner.oracle.trials) == 2 and tuner.controller.num_updates == 4
    assert tuner.supernet.trace_counts["train"] == 1 and tuner.supernet.trace_counts["eval"] == 1
    best_hp = tuner.get_best_hyperparameters(1)[0]
    assert set(best_hp.values) == {"op1", "op2", "skip[3].input[0]"}
    model = tuner.get_best_models(1)[0]
    assert not [layer for layer in model.layers if isinstance(layer, (LayerChoice, InputChoice))]
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)
    # The last derived child holds the supernet's current weights.
    last = tuner.oracle.trials[tuner.oracle.start_order[-1]]
    child = tuner.load_model(last)
    expected = tuner.supernet.predict(x[:8], last.hyperparameters.values).numpy()
    np.testing.assert_allclose(child.predict(x[:8], verbose=0), expected, atol=1e-5)
    # A SavedModel that TensorFlow serves without this package.
    path = export.export_model(child, str(tmp_path / "served"), format="saved_model")
    np.save(tmp_path / "images.npy", x[:8])
    serving = subprocess.run([sys.executable, "-c", SERVE, path, str(tmp_path / "images.npy")],
                             capture_output=True, text=True, timeout=120)
    assert serving.returncode == 0, serving.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "images.npy.out.npy"), expected, atol=1e-5)

    resumed = make_tuner(tmp_path, overwrite=False)
    assert resumed.epochs_done == 2 and resumed.controller.num_updates == 4
    np.testing.assert_allclose(resumed.supernet.predict(x[:8], last.hyperparameters.values).numpy(), expected, atol=1e-6)
    resumed.search(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=3)
    assert resumed.epochs_done == 3 and len(resumed.oracle.trials) == 3


def test_retrain_trains_the_plain_child_with_its_own_compile_settings(tmp_path):
    x, y = data(48)
    tuner = make_tuner(tmp_path, sampler="uniform", fine_tune_steps=3)
    tuner.search(x[:32], y[:32], validation_data=(x[32:], y[32:]), epochs=1)
    # The epoch's derived child, then the best of the finalists fine-tuned.
    last = tuner.oracle.trials[tuner.oracle.start_order[-1]]
    assert len(tuner.oracle.trials) == 2 and last.score == max(tuner.fine_tuned["scores"])
    model = tuner.retrain(tuner.get_best_hyperparameters(1)[0], x, y, epochs=1, batch_size=16)
    assert model.optimizer.__class__.__name__ == "Adam" and len(model.history.epoch) == 1
    with pytest.raises(ValueError, match=r"\['filters'\].*'filters': 8"):
        tuner.retrain(tuner.get_best_hyperparameters(1)[0], x, y, epochs=1, filters=8)
    # Weight inheritance: the user's model starts from the supernet's weights for it.
    best = tuner.get_best_hyperparameters(1)[0]
    shared = tuner.supernet.build_child(tuner.space.as_encoding(best), compile=False)
    recorded = WeightsAtStart()
    tuner.retrain(best, x, y, epochs=1, batch_size=16, callbacks=[recorded], from_shared_weights=True)
    assert_training_started_from(recorded, shared)


def test_two_replicas_give_the_architectures_and_scores_of_one_device():
    # Logical devices must be set before TensorFlow starts, so this runs in a fresh process.
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "distributed_choice_check.py")],
        capture_output=True, text=True, timeout=300, cwd=HERE,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "replicas 2" in result.stdout and "same" in result.stdout


def tabular(hp):
    """A classifier of 6 features (not images) with a plain hyperparameter beside its choice."""
    features = keras.Input((6,))
    width = hp.Int("width", 4, 16, step=4, default=8)
    x = LayerChoice({"narrow": keras.layers.Dense(width, activation="relu"),
                     "wide": keras.layers.Dense(width, activation="tanh")}, name="hidden", hp=hp)(features)
    model = keras.Model(features, keras.layers.Dense(3, activation="softmax")(x))
    model.compile(keras.optimizers.Adam(hp.Float("lr", 1e-4, 1e-2, sampling="log", default=1e-3)),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_a_non_image_model_searches_and_records_what_its_children_were_built_with(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype("float32"), rng.integers(0, 3, 64)
    tuner = keras_rlnas.ENASTuner(tabular, directory=str(tmp_path), project_name="tabular", seed=0, controller_steps=1,
                                  controller_batch=2, derive_samples=2, derive_finalists=1, fine_tune_steps=0,
                                  batch_size=16, validation_batch_size=16, verbose=0)
    tuner.search(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=2)
    # The other hyperparameters are recorded at the defaults the searched children used, not drawn at random.
    for trial in tuner.oracle.trials.values():
        assert trial.hyperparameters.values["width"] == 8 and trial.hyperparameters.values["lr"] == 1e-3
    assert tuner.get_best_models(1)[0].layers[1].units == 8
    with pytest.raises(ValueError, match=r"must be a \(count, 6\) array, got shape \(48, 2, 3\)"):
        tuner.search(x[:48].reshape(48, 2, 3), y[:48], validation_data=(x[48:], y[48:]), epochs=3)
    # The score ENAS records is an accuracy: a loss's name would label it wrongly.
    with pytest.raises(ValueError, match="a loss is not recorded; got 'val_loss'"):
        keras_rlnas.ENASTuner(tabular, objective="val_loss", directory=str(tmp_path), project_name="loss")


def test_the_global_float16_policy_gets_loss_scaling(tmp_path):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        supernet = keras_rlnas.supernet.ChoiceSupernet(build)
    finally:
        keras.config.set_dtype_policy(previous)
    assert isinstance(supernet.optimizer, keras.optimizers.LossScaleOptimizer)
