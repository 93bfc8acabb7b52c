import keras_tuner
import numpy as np
import pytest

from keras_rlnas.controller import Controller
from keras_rlnas.decision_map import DecisionMap
from keras_rlnas.spaces import ENASMacro, ENASMicro, structured


def macro(**options):
    options = {"num_layers": 6, "filters": 4, **options}
    return ENASMacro((12, 12, 1), num_classes=3, **options)


def micro(**options):
    options = {"num_cells": 1, "num_nodes": 3, "filters": 4, **options}
    return ENASMicro((12, 12, 1), num_classes=3, **options)


def layer_inputs(model, name):
    """Names of the layers whose outputs feed layer `name`."""
    node = model.get_layer(name)._inbound_nodes[0]
    return [tensor._keras_history.operation.name for tensor in node.input_tensors]


def declared(hp):
    return {hyperparameter.name: hyperparameter for hyperparameter in hp.space}


def spatial(model, name):
    return tuple(model.get_layer(name).output.shape[1:3])


# Macro space


def test_macro_hyperparameters_follow_the_structured_naming():
    hp = keras_tuner.HyperParameters()
    space = macro()
    space.build(hp)
    names = list(hp.values)
    assert names[:4] == ["layers[0].op", "layers[1].op", "layers[1].skip[0]", "layers[2].op"]
    assert len(names) == space.encoding_length == 6 + 15
    for name in names:
        group, index, token = structured.parse_name(name)
        assert group == "layers" and (token == "op" or structured.skip_source(token) < index)
    assert declared(hp)["layers[0].op"].values == list(ENASMacro.OPS)


def test_macro_encoding_round_trip_and_layout():
    space = macro()
    for seed in range(5):
        encoding = space.random_encoding(seed)
        values = space.decode(encoding)
        np.testing.assert_array_equal(space.encode(values), encoding)
        np.testing.assert_array_equal(space.values_from_encoding(encoding), values)
    encoding = space.random_encoding(0)
    op_indices, skips = space.parse(encoding)
    for layer in range(space.num_layers):
        offset = space.layer_offset(layer)
        assert encoding[offset] == op_indices[layer]
        assert np.flatnonzero(encoding[offset + 1 : offset + 1 + layer]).tolist() == list(
            skips[layer]
        )


def test_macro_child_reduces_after_l_over_3_minus_1_and_adds_skips():
    space = macro()
    assert space.reduction_positions == (1, 3)
    values = space.decode(np.zeros(space.encoding_length, np.int32))
    values["layers[0].op"] = "maxpool3x3"
    values["layers[4].op"] = "sepconv5x5"
    values["layers[4].skip[0]"] = True  # layer 0's output, reduced twice
    values["layers[4].skip[3]"] = True
    values["layers[2].skip[1]"] = True
    model = space.build_child(values)
    assert [spatial(model, f"layer{i}_{ENASMacro.OPS[0]}") for i in (1, 2, 3, 5)] == [
        (12, 12),
        (6, 6),
        (6, 6),
        (3, 3),
    ]
    assert spatial(model, "layer4_sepconv5x5") == (3, 3)
    assert layer_inputs(model, "layer4_skip_sum") == [
        "layer4_sepconv5x5",
        "reduction1_layer0",
        "reduction1_layer3",
    ]
    assert layer_inputs(model, "reduction1_layer0") == ["reduction0_layer0"]
    assert layer_inputs(model, "layer2_skip_sum") == ["layer2_conv3x3", "reduction0_layer1"]
    assert layer_inputs(model, "layer4_bn") == ["layer4_skip_sum"]
    # Only the stored outputs read later are reduced; layers without skips have no sum.
    names = {layer.name for layer in model.layers}
    assert "reduction0_layer0" in names and "reduction1_layer2" not in names
    assert "layer3_skip_sum" not in names and "layer3_bn" in names and "layer0_bn" not in names
    assert model.output.shape[-1] == 3 and model.optimizer is not None


def test_macro_child_without_skips_is_a_chain():
    space = macro(num_layers=3)
    model = space.build_child(np.zeros(space.encoding_length, np.int32), compile=False)
    assert not [layer for layer in model.layers if layer.name.endswith("skip_sum")]
    assert model.count_params() > 0 and not model.compiled


# Micro space


def micro_values(space):
    """A normal cell where node 4 reads nodes 2 and 3; loose end: node 4 only."""
    values = space.decode(np.zeros(space.encoding_length, np.int32))
    for group in ("normal_cell", "reduction_cell"):
        values[f"{group}[2].input[0]"], values[f"{group}[2].op[0]"] = 0, "sepconv3x3"
        values[f"{group}[2].input[1]"], values[f"{group}[2].op[1]"] = 1, "identity"
        values[f"{group}[3].input[0]"], values[f"{group}[3].op[0]"] = 1, "avgpool3x3"
        values[f"{group}[3].input[1]"], values[f"{group}[3].op[1]"] = 0, "maxpool3x3"
        values[f"{group}[4].input[0]"], values[f"{group}[4].op[0]"] = 2, "sepconv5x5"
        values[f"{group}[4].input[1]"], values[f"{group}[4].op[1]"] = 2, "identity"
    return values


def test_micro_hyperparameters_follow_the_structured_naming():
    hp = keras_tuner.HyperParameters()
    space = micro()
    space.build(hp)
    names = list(hp.values)
    assert names[:4] == [
        "normal_cell[2].input[0]",
        "normal_cell[2].input[1]",
        "normal_cell[2].op[0]",
        "normal_cell[2].op[1]",
    ]
    assert len(names) == space.encoding_length == 2 * 3 * 4
    for name in names:
        group, index, token = structured.parse_name(name)
        assert group in ("normal_cell", "reduction_cell") and 2 <= index <= 4
        slot = structured.input_slot(token)
        if slot is not None:
            assert declared(hp)[name].values == list(range(index))
        else:
            assert token in ("op[0]", "op[1]")


def test_micro_encoding_round_trip():
    space = micro()
    for seed in range(5):
        encoding = space.random_encoding(seed)
        np.testing.assert_array_equal(space.encode(space.decode(encoding)), encoding)
    values = micro_values(space)
    encoding = space.encode(values)
    assert encoding[space.node_offset("reduction_cell", 4) :][:4].tolist() == [2, 2, 2, 0]


def test_micro_child_cells_loose_ends_and_reductions():
    space = micro(num_cells=1)
    model = space.build_child(micro_values(space))
    kinds = [plan["kind"] for plan in space.cell_plan]
    assert kinds == ["normal_cell", "reduction_cell"] * 2 + ["normal_cell"]
    assert [spatial(model, f"cell{c}_output") for c in range(5)] == [
        (12, 12),
        (6, 6),
        (6, 6),
        (3, 3),
        (3, 3),
    ]
    assert [model.get_layer(f"cell{c}_output").output.shape[-1] for c in range(5)] == [
        4,
        8,
        8,
        16,
        16,
    ]
    # Nodes 2 and 3 are read by node 4 or not at all: loose ends are nodes 3 and 4.
    assert space.loose_ends(space.parse(space.encode(micro_values(space)))["normal_cell"]) == (1, 2)
    assert layer_inputs(model, "cell0_output") == ["cell0_node3", "cell0_node4"]
    assert layer_inputs(model, "cell0_node4") == [
        "cell0_node4_input0_from2_sepconv5x5",
        "cell0_node2",
    ]
    # Reduction cells: stride-2 ops on the cell inputs, stride 1 on computed nodes.
    assert spatial(model, "cell1_node2_input1_from1_identity") == (6, 6)
    assert spatial(model, "cell1_node4_input0_from2_sepconv5x5") == (6, 6)
    assert layer_inputs(model, "cell1_node3") == [
        "cell1_node3_input0_from1_avgpool3x3",
        "cell1_node3_input1_from0_maxpool3x3",
    ]
    # After a reduction, the older input is reduced to the newer one's size.
    assert model.get_layer("cell2_input0").__class__.__name__ == "FactorizedReduction"
    assert model.output.shape[-1] == 3


@pytest.mark.parametrize("make, last", [(macro, "layer5_bn"), (micro, "cell4_output")])
def test_a_strided_stem_halves_every_map_and_keeps_the_architectures(make, last):
    plain, strided = make(), make(stem_strides=2)
    assert strided.get_config() == {**plain.get_config(), "stem_strides": 2}
    assert type(strided).from_config(strided.get_config()).stem_strides == 2
    encoding = plain.random_encoding(3)
    assert strided.encoding_length == plain.encoding_length
    plain_child, strided_child = plain.build_child(encoding), strided.build_child(encoding)
    assert spatial(plain_child, "stem") == (12, 12) and spatial(strided_child, "stem") == (6, 6)
    # 12 -> 6 -> 3 -> 2: the reductions round up, as the stride-1 space's do on odd maps.
    assert spatial(plain_child, last) == (3, 3) and spatial(strided_child, last) == (2, 2)
    assert strided_child.count_params() == plain_child.count_params()
    with pytest.raises(ValueError, match=r"\(8, 8, 1\) is too small for a stem of stride 2.*1x1 map"):
        type(plain)((8, 8, 1), 3, stem_strides=2)


# Arguments


@pytest.mark.parametrize(
    "make, bad",
    [
        (lambda: ENASMacro((12, 12), 3), "(12, 12)"),
        (lambda: ENASMacro((12, 12, 1), 1), "num_classes"),
        (lambda: macro(num_layers=2), "2"),
        (lambda: macro(filters=0), "filters"),
        (lambda: macro(dropout=1.5), "1.5"),
        (lambda: macro(learning_rate=-1), "-1"),
        (lambda: macro(min_learning_rate=0.5), "0.5"),
        (lambda: micro(num_nodes=0), "num_nodes"),
        (lambda: micro(num_cells=1.5), "1.5"),
        (lambda: micro(restart_period=0), "restart_period"),
        (lambda: macro(stem_strides=0), "stem_strides"),
    ],
)
def test_bad_arguments_name_the_value(make, bad):
    with pytest.raises(ValueError, match=bad.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_bad_architectures_name_the_value():
    space = macro()
    values = space.decode(space.random_encoding(0))
    with pytest.raises(ValueError, match="conv7x7"):
        space.encode({**values, "layers[2].op": "conv7x7"})
    with pytest.raises(KeyError, match=r"layers\[5\]\.skip\[4\]"):
        space.encode({k: v for k, v in values.items() if k != "layers[5].skip[4]"})
    with pytest.raises(ValueError, match="21 integers"):
        space.build_child([0, 1, 2])
    cells = micro()
    values = cells.decode(cells.random_encoding(0))
    with pytest.raises(ValueError, match="normal_cell\\[3\\].input\\[0\\].*7"):
        cells.encode({**values, "normal_cell[3].input[0]": 7})
    encoding = cells.random_encoding(0)
    encoding[0] = 5
    with pytest.raises(ValueError, match="Node 2"):
        cells.parse(encoding)


# Keras Tuner


@pytest.mark.parametrize(
    "make, trials", [(lambda: macro(num_layers=3), 2), (lambda: micro(num_nodes=2), 1)]
)
def test_spaces_are_searchable_with_random_search(make, trials, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((16, 12, 12, 1), dtype=np.float32)
    labels = rng.integers(0, 3, 16)
    tuner = keras_tuner.RandomSearch(
        make(),
        objective="val_accuracy",
        max_trials=trials,
        seed=1,
        directory=str(tmp_path),
        project_name="space",
    )
    tuner.search(
        images, labels, validation_data=(images, labels), epochs=1, batch_size=8, verbose=0
    )
    best = tuner.get_best_hyperparameters()[0]
    model = tuner.hypermodel.build(best)
    assert model.predict(images, verbose=0).shape == (16, 3)
    assert len(tuner.oracle.trials) == trials


# The space/supernet contract: block names and controller actions


@pytest.mark.parametrize(
    "make, preset",
    [
        (lambda: macro(), "enas_macro"),
        (lambda: ENASMacro((8, 8, 1), num_classes=3, num_layers=12), "enas_macro"),
        (lambda: micro(), "enas_micro"),
        (lambda: ENASMicro((8, 8, 1), num_classes=3, num_nodes=5), "enas_micro"),
    ],
)
def test_encoding_from_actions_matches_encoding_the_sampled_values(make, preset):
    space = make()
    hp = keras_tuner.HyperParameters()
    space.declare_hyperparameters(hp)
    decision_map = DecisionMap()
    controller = Controller.from_preset(preset, decision_map.sync(hp), seed=3)
    # A fresh controller is nearly uniform: its samples cover ops, inputs and skips.
    for greedy in [True] + [False] * 300:
        actions = controller.sample(greedy=greedy).actions
        expected = space.encode(decision_map.values_from_actions(actions, controller.rng))
        encoding = space.encoding_from_actions(actions)
        assert encoding.dtype == np.int32
        np.testing.assert_array_equal(encoding, expected)


def test_encoding_from_actions_names_a_foreign_sample():
    with pytest.raises(ValueError, match="`actions` must be a vector of 21 integers"):
        macro().encoding_from_actions((0, 1, (1,)))


@pytest.mark.parametrize("make", [macro, micro])
def test_every_child_layer_name_parses_back(make):
    space = make()
    model = space.build_child(space.random_encoding(1))
    kinds = set()
    for layer in model.layers:
        parsed = space.parse_block_name(layer.name)
        if parsed is not None:
            kind, fields = parsed
            assert space.block_name(kind, **fields) == layer.name
            kinds.add(kind)
    assert "stem" in kinds and ("op" in kinds or "node_op" in kinds)
    assert space.parse_block_name("head_dense") is None


def test_block_name_names_a_bad_kind_and_op():
    with pytest.raises(ValueError, match="`kind` must be one of .*got 'layer'"):
        macro().block_name("layer", layer=0)
    with pytest.raises(ValueError, match="`op` must be one of .*got 'conv7x7'"):
        macro().block_name("op", layer=0, op="conv7x7")


def test_the_reference_codes_architectures_build_the_same_networks_here():
    space = macro(num_layers=3)
    # The reference code's macro ops: 1 is a 3x3 separable conv, 2 a 5x5 conv, 4 an average pool.
    ops, skips = space.parse(space.from_reference_encoding([1, 2, 1, 4, 0, 1]))
    assert [space.OPS[op] for op in ops] == ["sepconv3x3", "conv5x5", "avgpool3x3"]
    assert skips == ((), (0,), (1,))
    with pytest.raises(ValueError, match="op index 6 at position 0"):
        space.from_reference_encoding([6, 0, 0, 0, 0, 0])
    cells = micro(num_nodes=2)
    # Its micro ops: 0 a 3x3 separable conv, 1 a 5x5 one, 2 an average pool, 3 a max pool, 4 the identity.
    arc = [0, 4, 1, 0, 2, 1, 0, 3] + [1, 2, 0, 4, 0, 0, 2, 1]
    normal = cells.parse(cells.from_reference_encoding(arc))["normal_cell"]
    assert [[(source, cells.OPS[op]) for source, op in node] for node in normal] == [
        [(0, "identity"), (1, "sepconv3x3")], [(2, "sepconv5x5"), (0, "maxpool3x3")]]


def test_macro_reductions_sit_where_the_reference_code_puts_them():
    # d = L // 3; after layers d - 1 and 2d - 1, also when L is not a multiple of 3.
    assert [macro(num_layers=layers).reduction_positions for layers in (6, 8, 12, 14)] == [
        (1, 3), (1, 3), (3, 7), (3, 7)]
