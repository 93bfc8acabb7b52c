import math
import os

import keras
import keras_tuner
import numpy as np
import pytest

from keras_rlnas import data
from keras_rlnas.spaces import DepthCurriculum, VanillaNAS

CHOICES = dict(filter_heights=(1, 3, 5), filter_widths=(1, 3, 7), num_filters=(4, 6, 8))


def _random_architecture(rng, num_layers, strides):
    """An architecture drawn by the test itself, with the hyperparameter values that name it."""
    layers, values = [], {}
    for i in range(num_layers):
        layer = {
            "filter_height": int(rng.choice(CHOICES["filter_heights"])),
            "filter_width": int(rng.choice(CHOICES["filter_widths"])),
            "num_filters": int(rng.choice(CHOICES["num_filters"])),
            "strides": [int(rng.choice(strides)), int(rng.choice(strides))],
            "inputs": sorted(j for j in range(i) if rng.random() < 0.4),
        }
        layers.append(layer)
        for token in ("filter_height", "filter_width", "num_filters"):
            values[f"layers[{i}].{token}"] = layer[token]
        values[f"layers[{i}].stride_height"], values[f"layers[{i}].stride_width"] = layer["strides"]
        for j in range(i):
            values[f"layers[{i}].skip[{j}]"] = j in layer["inputs"]
    return layers, values


def _expected_graph(layers, image_shape):
    """Spatial sizes, input depths, paddings and classifier inputs by the paper's rules."""
    sizes, depths, expected = [], [], []
    for layer in layers:
        if layer["inputs"]:
            target = (max(sizes[j][0] for j in layer["inputs"]), max(sizes[j][1] for j in layer["inputs"]))
            pads = {j: (target[0] - sizes[j][0], target[1] - sizes[j][1]) for j in layer["inputs"]}
            in_depth = sum(depths[j] for j in layer["inputs"])
        else:
            target, pads, in_depth = image_shape[:2], {"image": (0, 0)}, image_shape[2]
        stride_h, stride_w = layer["strides"]
        sizes.append((math.ceil(target[0] / stride_h), math.ceil(target[1] / stride_w)))
        depths.append(layer["num_filters"])
        expected.append({"pads": pads, "in_depth": in_depth})
    consumed = {j for layer in layers for j in layer["inputs"]}
    loose = [i for i in range(len(layers)) if i not in consumed]
    return sizes, depths, expected, loose


def _parameter_count(layers, expected, depths, loose, num_classes):
    count = 0
    for layer, info in zip(layers, expected):
        kernel = layer["filter_height"] * layer["filter_width"] * info["in_depth"] * layer["num_filters"]
        count += kernel + 4 * layer["num_filters"]  # no conv bias; BN: gamma, beta, mean, variance
    features = sum(depths[i] for i in loose)
    return count + features * num_classes + num_classes


def _producer(tensor):
    return tensor._keras_history.operation


def _sources(tensor):
    """`{source: (extra rows, extra columns)}` of a merged input, walking back through the merge."""
    layer = _producer(tensor)
    if isinstance(layer, keras.layers.Concatenate):
        found = {}
        for part in layer.input:
            found.update(_sources(part))
        return found
    if isinstance(layer, keras.layers.ZeroPadding2D):
        (top, bottom), (left, right) = layer.padding
        assert abs(top - bottom) <= 1 and abs(left - right) <= 1  # centred
        (source, _), = _sources(layer.input).items()
        return {source: (top + bottom, left + right)}
    if isinstance(layer, keras.layers.InputLayer):
        return {"image": (0, 0)}
    assert isinstance(layer, keras.layers.ReLU), layer
    return {int(layer.name.split("_")[1]): (0, 0)}


@pytest.mark.parametrize("strides", [(1,), (1, 2, 3)])
def test_random_architectures_compile_by_the_papers_rules(strides):
    rng = np.random.default_rng(len(strides))
    image_shape = (12, 10, 2)
    for _ in range(12):
        num_layers = int(rng.integers(1, 6))
        space = VanillaNAS(image_shape, 5, num_layers=num_layers, strides=None if strides == (1,) else strides, **CHOICES)
        layers, values = _random_architecture(rng, num_layers, strides)
        hp = keras_tuner.HyperParameters()
        hp.values.update(values)
        model = space.build(hp)
        assert hp.values == values  # every value was read, none was invented

        sizes, depths, expected, loose = _expected_graph(layers, image_shape)
        for i, (layer, info) in enumerate(zip(layers, expected)):
            conv = model.get_layer(f"layers_{i}_conv")
            assert _sources(conv.input) == info["pads"]
            assert conv.input.shape[1:] == (*(max(sizes[j][k] for j in layer["inputs"]) if layer["inputs"] else image_shape[k] for k in (0, 1)), info["in_depth"])
            assert conv.kernel_size == (layer["filter_height"], layer["filter_width"])
            assert conv.strides == tuple(layer["strides"])
            assert model.get_layer(f"layers_{i}_relu").output.shape[1:] == (*sizes[i], depths[i])
        classifier_input = model.get_layer("global_pool").input
        height, width = max(sizes[i][0] for i in loose), max(sizes[i][1] for i in loose)
        assert _sources(classifier_input) == {i: (height - sizes[i][0], width - sizes[i][1]) for i in loose}
        assert classifier_input.shape[1:] == (height, width, sum(depths[i] for i in loose))
        assert model.count_params() == _parameter_count(layers, expected, depths, loose, 5)
        assert model.output.shape[1:] == (5,)


def test_hyperparameter_names_and_order():
    space = VanillaNAS((8, 8, 1), 3, num_layers=3, strides=(1, 2))
    hp = keras_tuner.HyperParameters()
    space.build(hp)
    names = [p.name for p in hp.space]
    layer_tokens = ["filter_height", "filter_width", "num_filters", "stride_height", "stride_width"]
    assert names == (
        [f"layers[0].{t}" for t in layer_tokens]
        + [f"layers[1].{t}" for t in layer_tokens] + ["layers[1].skip[0]"]
        + [f"layers[2].{t}" for t in layer_tokens] + ["layers[2].skip[0]", "layers[2].skip[1]"]
    )
    assert hp.space[0].values == [1, 3, 5, 7] and hp.space[2].values == [24, 36, 48, 64]


def test_without_skip_connections_the_layers_form_a_chain():
    space = VanillaNAS((8, 8, 1), 3, num_layers=4, skip_connections=False, **CHOICES)
    hp = keras_tuner.HyperParameters()
    model = space.build(hp)
    assert not any("skip" in name for name in hp.values)
    assert _sources(model.get_layer("layers_0_conv").input) == {"image": (0, 0)}
    for i in range(1, 4):
        assert _sources(model.get_layer(f"layers_{i}_conv").input) == {i - 1: (0, 0)}
    assert _sources(model.get_layer("global_pool").input) == {3: (0, 0)}


def test_weight_decay_is_an_l2_term_or_decoupled():
    space = VanillaNAS((8, 8, 1), 3, num_layers=2, weight_decay=1e-3, **CHOICES)
    model = space.build(keras_tuner.HyperParameters())
    penalty = sum(float(np.sum(np.square(w.numpy()))) for w in model.trainable_weights) * 1e-3 / 2
    assert float(sum(model.losses)) == pytest.approx(penalty, rel=1e-4)
    assert model.optimizer.nesterov and float(model.optimizer.momentum) == pytest.approx(0.9)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)

    decoupled = VanillaNAS((8, 8, 1), 3, num_layers=2, weight_decay=1e-3, decoupled_weight_decay=True, **CHOICES)
    model = decoupled.build(keras_tuner.HyperParameters())
    assert not model.losses and model.optimizer.weight_decay == pytest.approx(1e-3)


def test_children_save_and_load_with_identical_predictions(tmp_path):
    rng = np.random.default_rng(7)
    space = VanillaNAS((12, 12, 1), 4, num_layers=4, strides=(1, 2, 3), **CHOICES)
    layers, values = _random_architecture(rng, 4, (1, 2, 3))
    layers[3]["inputs"] = [0, 1, 2]  # make sure some input is padded
    hp = keras_tuner.HyperParameters()
    hp.values.update(values)
    hp.values.update({"layers[3].skip[0]": True, "layers[3].skip[1]": True, "layers[3].skip[2]": True})
    model = space.build(hp)
    x = rng.normal(size=(16, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 4, 16)
    model.fit(x, y, epochs=1, verbose=0)  # moves the batch-norm statistics away from their start
    path = os.path.join(tmp_path, "child.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.count_params() == model.count_params()


def test_fit_uses_defaults_and_counts_children():
    space = VanillaNAS((8, 8, 1), 3, num_layers=2, epochs=2, batch_size=4, **CHOICES)
    hp = keras_tuner.HyperParameters()
    model = space.build(hp)
    x, y = np.zeros((8, 8, 8, 1), "float32"), np.zeros(8, "int32")
    history = space.fit(hp, model, x, y, verbose=0)
    assert len(history.history["loss"]) == 2 and space.num_sampled == 1
    history = space.fit(hp, model, x, y, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1 and space.num_sampled == 2


def _layer_count(hp):
    return sum(1 for name in hp.values if name.endswith(".filter_height"))


def test_depth_curriculum_unlocks_layers_and_rebuilds_old_trials():
    space = VanillaNAS((8, 8, 1), 3, num_layers=4, curriculum=DepthCurriculum(2, 1, every=2), **CHOICES)
    first = keras_tuner.HyperParameters()
    assert len(space.build(first).layers) and _layer_count(first) == 2
    assert "layers[2].filter_height" not in first.values  # not a hyperparameter yet

    space.num_sampled = 2
    fresh = first.copy()  # what an oracle that knows 2 layers proposes
    fresh.values["layers[0].filter_height"] = 5
    space.build(fresh)
    assert _layer_count(fresh) == 3
    # Rebuilding the first trial (e.g. get_best_models) keeps its 2 layers,
    # in this process and in a new one.
    assert _layer_count(first) == 2 and space.depth(first.copy()) == 2
    assert VanillaNAS((8, 8, 1), 3, num_layers=4, curriculum=DepthCurriculum(2, 1, every=2)).depth(first) == 2

    space.num_sampled = 100
    deepest = fresh.copy()
    deepest.values["layers[0].filter_height"] = 3
    space.build(deepest)
    assert _layer_count(deepest) == 4  # capped at num_layers
    assert space.depth(fresh.copy()) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"filter_heights": ()}, "`filter_heights` is empty"),
        ({"num_filters": (16, 0)}, "positive ints, got 0"),
        ({"filter_widths": (3, 3)}, "repeats a value"),
        ({"strides": []}, "`strides` is empty"),
        ({"input_shape": (28, 28)}, "input_shape"),
        ({"num_classes": 1}, "num_classes"),
        ({"num_layers": 0}, "num_layers"),
        ({"momentum": 1.5}, "`momentum`.*1.5"),
        ({"bn_momentum": -0.1}, "`bn_momentum`.*-0.1"),
        ({"epochs": 2.5}, "`epochs`.*2.5"),
        ({"batch_size": 0}, "`batch_size`.*0"),
        ({"input_shape": 28}, "`input_shape`.*28"),
        ({"padding": "valid", "num_layers": 3, "filter_heights": (7,)}, "layer 1 .* shrink below 1x1"),
        (
            {"padding": "valid", "strides": (1, 3), "input_shape": (28, 28, 1), "filter_widths": (1, 3), "filter_heights": (3,)},
            "strides up to 3, layer 3 of a 28x28 image can shrink below 1x1",
        ),
        ({"curriculum": DepthCurriculum(start_layers=9)}, "starts at 9 layers"),
    ],
)
def test_impossible_spaces_fail_at_construction(kwargs, message):
    arguments = {"input_shape": (8, 8, 1), "num_classes": 3, "num_layers": 6, **kwargs}
    with pytest.raises(ValueError, match=message):
        VanillaNAS(**arguments)


def test_valid_padding_that_fits_builds():
    space = VanillaNAS((8, 8, 1), 3, num_layers=2, padding="valid", filter_heights=(3,), filter_widths=(3,))
    model = space.build(keras_tuner.HyperParameters())
    assert model.get_layer("layers_1_relu").output.shape[1:3] in ((6, 6), (4, 4))


def test_config_round_trip():
    space = VanillaNAS((8, 8, 1), 3, num_layers=5, strides=(1, 2), curriculum=DepthCurriculum(2, 1, 3))
    clone = VanillaNAS.from_config(space.get_config())
    assert clone.get_config() == space.get_config()
    assert clone.curriculum(3) == 3
    # An exported architecture's options are a get_config(): the space is rebuilt from them.
    from keras_rlnas import export

    rebuilt = export.make_space("vanilla", (8, 8, 1), 3, space.get_config())
    assert rebuilt.get_config() == space.get_config()


@pytest.fixture(scope="module")
def fashion_slice():
    try:
        return data.load_arrays("fashion_mnist", validation_size=100, limit=300, source="local")
    except data.DataNotFoundError as error:
        pytest.skip(f"Fashion-MNIST is not installed: {error}")


def _tiny_space(**kwargs):
    return VanillaNAS(
        (28, 28, 1), 10, num_layers=3, filter_heights=(1, 3), filter_widths=(1, 3),
        num_filters=(4, 8), strides=(1, 2), epochs=1, batch_size=64, **kwargs,
    )


def test_random_search_on_a_fashion_mnist_slice(fashion_slice, tmp_path):
    (x, y), validation, _, _ = fashion_slice
    space = _tiny_space(curriculum=DepthCurriculum(start_layers=2, add_layers=1, every=1))
    tuner = keras_tuner.RandomSearch(
        space, objective="val_accuracy", max_trials=2, seed=1,
        directory=str(tmp_path), project_name="random",
    )
    tuner.search(x, y, validation_data=validation, verbose=0)
    trials = tuner.oracle.get_best_trials(2)
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    assert sorted(_layer_count(t.hyperparameters) for t in trials) == [2, 3]  # the curriculum grew
    best = tuner.get_best_models(1)[0]  # rebuilt at its own depth, weights loaded
    accuracy = best.evaluate(*validation, verbose=0)[1]
    assert accuracy == pytest.approx(trials[0].score, abs=1e-6)


def test_rl_search_on_a_fashion_mnist_slice(fashion_slice, tmp_path):
    rl_search = pytest.importorskip("keras_rlnas.tuners.rl_search")
    (x, y), validation, _, _ = fashion_slice
    tuner = rl_search.RLSearch(
        _tiny_space(), objective="val_accuracy", reward="nas", max_trials=2, update_every=2,
        seed=1, directory=str(tmp_path), project_name="rl",
    )
    tuner.search(x, y, validation_data=validation, verbose=0)
    trials = tuner.oracle.get_best_trials(2)
    assert len(trials) == 2 and all(t.status == "COMPLETED" for t in trials)
    skips = [d for d in tuner.oracle.decision_map.decisions if d.kind == "skip"]
    # Layers 1 and 2 choose their inputs by attention; layer 0's skip step has nothing to choose.
    assert [d.size for d in skips] == [0, 1, 2] and [d.chooses for d in skips] == [False, True, True]
    assert len(tuner.oracle.updates) == 1  # one REINFORCE step on the two rewards
    assert 0.0 <= trials[0].score <= 1.0
