"""Retraining a found child from the supernet's shared weights instead of from scratch."""

import keras
import numpy as np
import pytest
from supernet_checks import WeightsAtStart, assert_training_started_from

import keras_rlnas
from keras_rlnas import retrain

pytestmark = pytest.mark.usefixtures("quick_graph_compilation")


def tiny_micro():
    return keras_rlnas.ENASMicro((12, 12, 1), 3, num_cells=1, num_nodes=2, filters=4)


@pytest.mark.parametrize("space", [keras_rlnas.ENASMacro((12, 12, 1), 3, num_layers=3, filters=4), tiny_micro()])
def test_retrain_from_shared_weights_starts_from_the_supernets_child(tmp_path, tiny_images, space):
    x, y = tiny_images
    # Where the shared weights come from does not matter here: no controller phase, a short derivation.
    tuner = keras_rlnas.ENASTuner(
        space, seed=0, sampler="uniform", derive_samples=2, derive_finalists=1, batch_size=32,
        directory=str(tmp_path), project_name="p", verbose=0,
    )
    values = space.decode(space.random_encoding(4))
    with pytest.raises(ValueError, match="needs the supernet's weights: run search"):
        tuner.retrain(values, x, y, epochs=1, from_shared_weights=True)
    tuner.search(x, y, validation_data=(x[:32], y[:32]), epochs=1)
    shared = tuner.supernet.build_child(space.encode(values), compile=False)
    recorded = WeightsAtStart()
    model = tuner.retrain(values, x, y, epochs=1, callbacks=[recorded], from_shared_weights=True)
    assert_training_started_from(recorded, shared)
    assert len(model.outputs) == 1 and len(model.history.epoch) == 1
    # From scratch, the same call starts elsewhere.
    fresh = WeightsAtStart()
    tuner.retrain(values, x, y, epochs=1, callbacks=[fresh])
    kernel_layer = next(layer for layer in shared.layers if layer.weights and layer.weights[0].ndim == 4)
    assert not np.array_equal(fresh.weights[kernel_layer.name][0], kernel_layer.get_weights()[0])
    with pytest.raises(ValueError, match="4-filter weights; filters=6"):
        tuner.retrain(values, x, y, epochs=1, filters=6, from_shared_weights=True)


def test_inherit_weights_names_the_layer_that_does_not_fit():
    space = keras_rlnas.ENASMacro((12, 12, 1), 3, num_layers=3, filters=4)
    encoding = space.random_encoding(1)
    narrow, wide = space.build_child(encoding), space.with_options(filters=6).build_child(encoding)
    with pytest.raises(ValueError, match=r"Cannot inherit the weights of layer '\w+' \(shapes .*holds shapes"):
        retrain.inherit_weights(wide, narrow)
    other = space.build_child(space.random_encoding(2))
    plain = keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(2, 3, name="not_in_child")])
    with pytest.raises(ValueError, match="'not_in_child'.*has no such layer"):
        retrain.inherit_weights(other, plain)
