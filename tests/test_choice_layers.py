"""LayerChoice / InputChoice: one space definition for plain Keras Tuner search and for weight sharing."""

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from choice_models import build, conv, data

import keras_rlnas
from keras_rlnas.layers import InputChoice, LayerChoice
from keras_rlnas.supernet import ChoiceSpace, ChoiceSupernet


def no_choice_layers(model):
    return not [layer for layer in model.layers if isinstance(layer, (LayerChoice, InputChoice))]


def test_with_an_ordinary_hp_the_model_holds_only_the_chosen_candidates():
    hp = keras_tuner.HyperParameters()
    hp.values.update({"op1": "pool", "op2": 1, "skip[3].input[0]": 2})
    model = build(hp)
    assert no_choice_layers(model)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert "MaxPooling2D" in kinds and "SeparableConv2D" in kinds and kinds.count("Conv2D") == 1
    assert [h.name for h in hp.space] == ["op1", "op2", "skip[3].input[0]"]
    assert hp.get("op1") == "pool" and model.predict(data(4)[0], verbose=0).shape == (4, 3)
    # Defaults: the first candidate, the latest input.
    defaults = keras_tuner.HyperParameters()
    build(defaults)
    assert defaults.values == {"op1": "conv3", "op2": 0, "skip[3].input[0]": 2}


def test_input_choice_slots_are_structured_choices_and_their_picks_are_reduced():
    a, b = keras.Input((4,)), keras.Input((4,))
    hp = keras_tuner.HyperParameters()
    hp.values.update({"merge[2].input[0]": 0, "merge[2].input[1]": 1})
    summed = InputChoice(n_chosen=2, reduction="mean", name="merge", hp=hp)([a, b])
    model = keras.Model([a, b], summed)
    assert sorted(hp.values) == ["merge[2].input[0]", "merge[2].input[1]"]
    assert hp.space[0].values == [0, 1]
    out = model.predict([np.ones((1, 4)), 3 * np.ones((1, 4))], verbose=0)
    np.testing.assert_allclose(out, 2 * np.ones((1, 4)))
    decisions = keras_rlnas.DecisionMap().sync(hp)
    # Both slots pick by attention; the position then closes with a step that records it.
    assert [d.kind for d in decisions][-3:] == ["pick", "pick", "anchor"]


def test_layer_choice_serialises():
    layer = LayerChoice({"a": keras.layers.Dense(2), "b": keras.layers.Dense(2, activation="relu")}, name="head")
    layer(keras.Input((3,)))
    copy = LayerChoice.from_config(layer.get_config())
    assert copy.labels == ["a", "b"] and copy.name == "head"
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)).labels == ["a", "b"]
    picker = InputChoice(n_chosen=2, name="pick")
    assert InputChoice.from_config(picker.get_config()).n_chosen == 2


def test_random_search_and_rl_search_search_the_same_function(tmp_path):
    x, y = data()
    for tuner_class in (keras_tuner.RandomSearch, keras_rlnas.RLSearch):
        tuner = tuner_class(build, objective="val_accuracy", max_trials=2, seed=1, directory=str(tmp_path),
                            project_name=tuner_class.__name__)
        tuner.search(x, y, epochs=1, validation_split=0.25, verbose=0)
        best = tuner.get_best_models(1)[0]
        assert no_choice_layers(best)
        assert set(tuner.get_best_hyperparameters(1)[0].values) == {"op1", "op2", "skip[3].input[0]"}


def test_the_weight_sharing_space_decides_what_the_plain_search_declares():
    space = ChoiceSpace(build)
    declared = keras_tuner.HyperParameters()
    build(declared)
    mine = keras_tuner.HyperParameters()
    space.declare_hyperparameters(mine)
    assert [h.get_config() for h in mine.space] == [h.get_config() for h in declared.space]
    assert space.input_shape == (8, 8, 1) and space.num_classes == 3 and space.outputs_probabilities
    # op1, op2, three anchors for the input's attention, the input, the anchor closing its position
    controller_actions = [2, 1, 0, 0, 0, 1, 0]
    assert sorted(space.anchor_steps) == [2, 3, 4, 6]
    np.testing.assert_array_equal(space.encoding_from_actions(controller_actions), [2, 1, 1])


def test_one_trace_serves_every_architecture_and_children_hold_the_shared_weights():
    net = ChoiceSupernet(build)
    x, y = data(16)
    for seed in range(4):
        net.train_step(x, y, net.space.random_encoding(seed))
        net.eval_step(x, y, net.space.random_encoding(seed + 10))
    assert net.trace_counts["train"] == 1 and net.trace_counts["eval"] == 1
    for values in ({"op1": "conv5", "op2": 1, "skip[3].input[0]": 2}, {"op1": "pool", "op2": 0, "skip[3].input[0]": 0}):
        child = net.build_child(values)
        assert no_choice_layers(child)
        expected = net.predict(x, values).numpy()
        np.testing.assert_allclose(child.predict(x, verbose=0), expected, atol=1e-5)
    assert net.trace_counts["predict"] == 1


def test_a_step_trains_only_the_chosen_candidate():
    net = ChoiceSupernet(build)
    choice = net.model.network.get_layer("op2")
    before = [w.numpy().copy() for w in choice.candidates[1].trainable_weights]
    chosen_before = [w.numpy().copy() for w in choice.candidates[0].trainable_weights]
    x, y = data(16)
    net.train_step(x, y, {"op1": "conv3", "op2": 0, "skip[3].input[0]": 2})
    for weight, old in zip(choice.candidates[1].trainable_weights, before):
        np.testing.assert_array_equal(weight.numpy(), old)
    assert any(not np.array_equal(w.numpy(), old) for w, old in zip(choice.candidates[0].trainable_weights, chosen_before))


# ------------------------------------------------------------------- errors
def test_two_choices_with_one_name_are_refused():
    def twice(hp):
        images = keras.Input((8, 8, 1))
        x = LayerChoice([conv(4, 3), conv(4, 5)], name="op", hp=hp)(images)
        x = LayerChoice([conv(4, 3), conv(4, 5)], name="op", hp=hp)(x)
        return keras.Model(images, keras.layers.Dense(3)(keras.layers.Flatten()(x)))

    with pytest.raises(ValueError, match="Two choices are named 'op'"):
        ChoiceSpace(twice)


def test_candidates_whose_shapes_differ_are_refused_with_each_shape():
    def mismatched(hp):
        images = keras.Input((8, 8, 1))
        x = LayerChoice({"same": conv(4, 3), "strided": keras.layers.Conv2D(4, 3, strides=2)}, name="op", hp=hp)(images)
        return keras.Model(images, keras.layers.Dense(3)(keras.layers.Flatten()(x)))

    with pytest.raises(ValueError, match=r"LayerChoice 'op'.*'same' -> \(None, 8, 8, 4\); 'strided' -> \(None, 3, 3, 4\)"):
        ChoiceSpace(mismatched)


def test_choices_whose_number_depends_on_another_hyperparameter_are_refused():
    def looped(hp):
        images = keras.Input((8, 8, 1))
        x = images
        for i in range(hp.Int("depth", 1, 3)):
            x = LayerChoice([conv(4, 3), conv(4, 5)], name=f"op{i}", hp=hp)(x)
        return keras.Model(images, keras.layers.Dense(3)(keras.layers.Flatten()(x)))

    with pytest.raises(ValueError, match=r"depend on hyperparameter values.*\['op0'\].*'depth': 3.*\['op0', 'op1', 'op2'\]"):
        ChoiceSpace(looped)

    def looped_over_a_choice(hp):
        images = keras.Input((8, 8, 1))
        x = LayerChoice({"one": conv(4, 3), "two": conv(4, 5)}, name="op", hp=hp)(images)
        for i in range(1 if hp.get("op") == "one" else 2):
            x = LayerChoice([conv(4, 3), conv(4, 5)], name=f"extra{i}", hp=hp)(x)
        return keras.Model(images, keras.layers.Dense(3)(keras.layers.Flatten()(x)))

    with pytest.raises(ValueError, match=r"\['op', 'extra0'\].*'op': 'two'.*\['op', 'extra0', 'extra1'\]"):
        ChoiceSpace(looped_over_a_choice)


def test_a_model_without_choices_and_bad_arguments_are_refused(tmp_path):
    def plain(hp):
        images = keras.Input((8, 8, 1))
        return keras.Model(images, keras.layers.Dense(3)(keras.layers.Flatten()(images)))

    with pytest.raises(ValueError, match="no LayerChoice or InputChoice"):
        keras_rlnas.ENASTuner(plain, directory=str(tmp_path))
    with pytest.raises(ValueError, match="name=None"):
        LayerChoice([keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="name='bad name'"):
        InputChoice(name="bad name")
    # Keras layer names take no '/': refused in every mode, not only in a supernet.
    with pytest.raises(ValueError, match="name='block/op'"):
        LayerChoice([keras.layers.Dense(2)], name="block/op", hp=keras_tuner.HyperParameters())
    with pytest.raises(ValueError, match="n_chosen.*0"):
        InputChoice(n_chosen=0, name="skip")
    with pytest.raises(TypeError, match="Candidate 1 must be a Keras layer"):
        LayerChoice([keras.layers.Dense(2), "dense"], name="op")


def test_a_choice_the_architecture_does_not_read_computes_nothing():
    from keras_rlnas.supernet.custom import live_choices

    net = ChoiceSupernet(build)
    model = net.model
    for skip, expected in ((0, (False, False)), (1, (True, False)), (2, (True, True))):
        arch = tf.constant(net.space.encode({"op1": "conv5", "op2": 1, "skip[3].input[0]": skip}))
        live = live_choices(model._plan, model.network.outputs, arch, net.space.offsets)
        assert (bool(live["op1"]), bool(live["op2"])) == expected
    # The child of skip=0 holds neither choice; the supernet's step costs what it costs.
    x, _ = data(8)
    values = {"op1": "conv5", "op2": 1, "skip[3].input[0]": 0}
    child = net.build_child(values)
    assert [type(layer).__name__ for layer in child.layers].count("Conv2D") == 1
    np.testing.assert_allclose(child.predict(x, verbose=0), net.predict(x, values).numpy(), atol=1e-5)


def test_a_choice_called_twice_shares_its_candidates_in_the_supernet_and_the_child():
    def shared(hp):
        images = keras.Input((8, 8, 1))
        stem = conv(4, 3)(images)
        op = LayerChoice([conv(4, 3), keras.layers.MaxPooling2D(3, 1, "same")], name="op", hp=hp)
        x = InputChoice(name="skip", hp=hp)([stem, op(stem)])
        x = op(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(images, keras.layers.Dense(3, activation="softmax")(x))

    net = ChoiceSupernet(shared)
    x, y = data(8)
    for values in ({"op": 0, "skip[2].input[0]": 0}, {"op": 0, "skip[2].input[0]": 1}, {"op": 1, "skip[2].input[0]": 1}):
        net.train_step(x, y, values)
        np.testing.assert_allclose(net.build_child(values).predict(x, verbose=0), net.predict(x, values).numpy(), atol=1e-5)


def test_layers_named_alike_in_nested_blocks_copy_their_own_weights():
    def block(name, hp):
        inputs = keras.Input((8, 8, 4))
        x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
        x = LayerChoice([conv(4, 3), keras.layers.Identity()], name=f"{name}_op", hp=hp)(x)
        return keras.Model(inputs, x, name=name)

    def nested(hp):
        images = keras.Input((8, 8, 1))
        x = conv(4, 3)(images)
        x = block("first", hp)(x)
        x = block("second", hp)(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(images, keras.layers.Dense(3, activation="softmax")(x))

    net = ChoiceSupernet(nested)
    x, y = data(8)
    values = {"first_op": 0, "second_op": 1}
    net.train_step(x, y, values)
    child = net.build_child(values)
    np.testing.assert_allclose(child.predict(x, verbose=0), net.predict(x, values).numpy(), atol=1e-5)


def test_a_hypermodel_subclass_is_a_space_too():
    class Residual(keras_tuner.HyperModel):
        def build(self, hp):
            return build(hp)

    space = ChoiceSpace(Residual(name="residual"))
    assert space.name == "residual" and [slot.name for slot in space.slots] == ["op1", "op2", "skip[3].input[0]"]
    with pytest.raises(TypeError, match="function build"):
        ChoiceSpace("build")


def test_fused_call_normalises_as_keras_batch_normalization():
    from keras_rlnas.layers.batch_norm import fused_call

    x = np.random.default_rng(0).normal(2.0, 3.0, (8, 5, 5, 4)).astype("float32")
    reference, fused = (keras.layers.BatchNormalization(momentum=0.8) for _ in range(2))
    for layer in (reference, fused):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 2.0, 4))
        layer.beta.assign(np.linspace(-1.0, 1.0, 4))
    fused.call = fused_call(fused)
    np.testing.assert_allclose(fused(x, training=True), reference(x, training=True), atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean, reference.moving_mean, atol=1e-5)
    # The fused kernel's moving variance follows the unbiased batch variance.
    n = x.size // 4
    np.testing.assert_allclose(
        fused.moving_variance, 0.8 + 0.2 * x.var(axis=(0, 1, 2)) * n / (n - 1), rtol=1e-4
    )
    mean, variance = np.asarray(fused.moving_mean), np.asarray(fused.moving_variance)
    expected = np.asarray(fused.gamma) * (x - mean) / np.sqrt(variance + fused.epsilon) + np.asarray(fused.beta)
    np.testing.assert_allclose(fused(x, training=False), expected, atol=1e-4)


def test_bfloat16_inputs_are_normalised_in_float32_and_leave_in_the_layers_dtype():
    from keras_rlnas.layers.batch_norm import BatchNorm, fused_normalisation

    x = np.random.default_rng(0).normal(2.0, 3.0, (8, 5, 5, 4)).astype("float32")
    ones, zeros = np.ones(4, "float32"), np.zeros(4, "float32")
    outputs, _, _ = fused_normalisation(tf.constant(x, tf.bfloat16), ones, zeros, zeros, ones, "batch", 0.9, 1e-5)
    assert outputs.dtype == tf.float32
    reference, mixed = BatchNorm(), BatchNorm(dtype="mixed_bfloat16")
    with tf.GradientTape() as tape:
        inputs = tf.constant(x, tf.bfloat16)
        tape.watch(inputs)
        normalised = mixed(inputs, training=True)
        loss = tf.reduce_sum(tf.cast(normalised, tf.float32) * np.arange(4, dtype="float32"))
    gradient = tape.gradient(loss, inputs)
    assert normalised.dtype == tf.bfloat16 and gradient.dtype == tf.bfloat16
    assert np.isfinite(gradient.numpy().astype("float32")).all() and np.abs(gradient.numpy().astype("float32")).max() > 0
    np.testing.assert_allclose(normalised.numpy().astype("float32"), reference(x, training=True), atol=0.05)
    np.testing.assert_allclose(mixed.moving_mean, reference.moving_mean, rtol=0.02)
    np.testing.assert_allclose(mixed.moving_variance, reference.moving_variance, rtol=0.02)


def test_the_supernet_runs_keras_batch_normalization_with_the_fused_kernel():
    net = ChoiceSupernet(build)
    images, labels = data(16)
    arch = tf.constant(net.space.random_encoding(0), tf.int32)
    graph = net._train_function.get_concrete_function(tf.cast(images, tf.float32), tf.constant(labels, tf.int32), arch).graph

    def op_types(graph):
        types = [op.type for op in graph.get_operations()]
        for function in graph._functions.values():
            types += [node.op for node in function.definition.node_def]
        return types

    keras_layers = [layer for layer in net.model.network._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    assert keras_layers and "FusedBatchNormV3" in op_types(graph)
    assert all("call" not in vars(layer) for layer in keras_layers)  # the user's layers are left as they were


def test_a_softmax_inside_a_nested_head_or_a_choice_is_seen_and_candidates_must_agree():
    def ending_in(head):
        def build_with_head(hp):
            images = keras.Input((8, 8, 1))
            x = keras.layers.Flatten()(LayerChoice([conv(4, 3), conv(4, 5)], name="op", hp=hp)(images))
            return keras.Model(images, head(hp)(x))

        return build_with_head

    def nested(hp):
        return keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3, activation="softmax")])

    def chosen(hp):
        return LayerChoice([keras.layers.Dense(3, activation="softmax"),
                            keras.Sequential([keras.layers.Dense(3), keras.layers.Softmax()])], name="head", hp=hp)

    def disagreeing(hp):
        return LayerChoice({"probabilities": keras.layers.Dense(3, activation="softmax"), "logits": keras.layers.Dense(3)},
                           name="head", hp=hp)

    # Probabilities read as logits would train the shared weights on a softmax of a softmax.
    assert ChoiceSpace(ending_in(nested)).outputs_probabilities
    assert ChoiceSpace(ending_in(chosen)).outputs_probabilities
    assert not ChoiceSpace(ending_in(lambda hp: keras.layers.Dense(3))).outputs_probabilities
    with pytest.raises(ValueError, match=r"LayerChoice 'head'.*\['probabilities'\] end in a softmax"):
        ChoiceSpace(ending_in(disagreeing))


def test_candidates_named_alike_nested_choices_and_choices_declared_twice_are_refused():
    def block(dilation):
        return keras.Sequential([keras.layers.Conv2D(4, 3, padding="same", dilation_rate=dilation)], name="block")

    def named_alike(hp):
        images = keras.Input((8, 8, 1))
        x = LayerChoice([block(1), block(2)], name="op", hp=hp)(images)
        return keras.Model(images, keras.layers.Dense(3)(keras.layers.Flatten()(x)))

    # A child's layers take the shared weights by name: the second block's would reach the first.
    with pytest.raises(ValueError, match="named 'block'"):
        ChoiceSupernet(named_alike)

    def nested(hp):
        images = keras.Input((8, 8, 1))
        inner = LayerChoice([conv(4, 3), conv(4, 5)], name="inner", hp=hp)
        x = LayerChoice({"plain": conv(4, 3), "deep": keras.Sequential([conv(4, 3), inner])}, name="outer", hp=hp)(images)
        return keras.Model(images, keras.layers.Dense(3)(keras.layers.Flatten()(x)))

    with pytest.raises(ValueError, match="Candidate 'deep' of LayerChoice 'outer' holds the choice 'inner'"):
        ChoiceSpace(nested)
    # Under a plain Keras Tuner search a second declaration would silently reuse the first one's value.
    hp = keras_tuner.HyperParameters()
    LayerChoice([conv(4, 3), conv(4, 5)], name="op", hp=hp)
    assert LayerChoice([conv(4, 3), conv(4, 5)], name="op", hp=hp) is not None  # the same choice again
    with pytest.raises(ValueError, match=r"'op' over \['a', 'b'\].*already declared over \[0, 1\]"):
        LayerChoice({"a": conv(4, 3), "b": conv(4, 5)}, name="op", hp=hp)


def test_choice_errors_name_the_choice_and_an_input_choice_merges_at_each_place():
    def unbuildable(hp):
        images = keras.Input((8, 8, 1))
        x = keras.layers.Flatten()(images)
        x = LayerChoice({"dense": keras.layers.Dense(4), "conv": keras.layers.Conv2D(4, 3)}, name="op", hp=hp)(x)
        return keras.Model(images, keras.layers.Dense(3)(x))

    with pytest.raises(ValueError, match=r"Candidate 'conv' of LayerChoice 'op' cannot take the choice's input \(None, 64\)"):
        ChoiceSpace(unbuildable)
    with pytest.raises(ValueError, match="InputChoice 'skip' is called on a non-empty list.*one tensor of shape \\(None, 4\\)"):
        InputChoice(name="skip")(keras.Input((4,)))

    def merged_twice(hp):
        images = keras.Input((8, 8, 1))
        a, b, c = conv(4, 3)(images), conv(4, 5)(images), conv(4, 1)(images)
        merge = InputChoice(n_chosen=2, name="pick", hp=hp)
        x = keras.layers.Concatenate()([merge([a, b, c]), merge([b, c, a])])
        return keras.Model(images, keras.layers.Dense(3)(keras.layers.Flatten()(x)))

    model = merged_twice(keras_tuner.HyperParameters())
    assert [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)] == ["pick_sum", "pick_sum_2"]
