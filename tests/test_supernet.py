
import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from supernet_checks import (
    assert_every_op_once_per_position,
    assert_fair_step_sums_its_childrens_steps,
    reset_momentum,
)

from keras_rlnas.spaces import ENASMacro
from keras_rlnas.supernet import MacroSupernet, cosine_restart_learning_rate
from keras_rlnas.supernet.fine_tuning import best_fine_tuned
from keras_rlnas.tuners.derivation import cycle

RNG = np.random.default_rng(0)
IMAGES = RNG.random((16, 8, 8, 1), dtype=np.float32)
LABELS = RNG.integers(0, 3, 16)


pytestmark = pytest.mark.usefixtures("quick_graph_compilation")


@pytest.fixture(scope="module")
def macro_net():
    # Fixed weights: recalibration keeps the unbiased variance, a little above the batch
    # variance on the small maps after the reductions, enough to push some draws past 1e-2.
    keras.utils.set_random_seed(0)
    space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4, dropout=0.0)
    return MacroSupernet(space)


def snapshot(net):
    return {
        name: [np.array(value) for value in block.get_weights()]
        for name, block in net.model.blocks.items()
    }


def changed_blocks(before, after):
    return {
        name
        for name in before
        if any(not np.array_equal(x, y) for x, y in zip(before[name], after[name]))
    }


def architectures(space, count):
    return [space.random_encoding(seed) for seed in range(count)]


def test_one_trace_serves_every_architecture(macro_net):
    net, space = macro_net, macro_net.space
    for arch in architectures(space, 6):
        result = net.train_step(IMAGES, LABELS, arch)
        assert np.isfinite(float(result["loss"]))
        assert 0.0 <= float(net.eval_step(IMAGES, LABELS, arch)) <= 1.0
    hp = keras_tuner.HyperParameters()
    space.declare_hyperparameters(hp)
    net.train_step(IMAGES, LABELS, hp)
    net.train_step(IMAGES, tf.one_hot(LABELS, 3), space.decode(space.random_encoding(9)))
    assert net.trace_counts["train"] == 1 and net.trace_counts["eval"] == 1
    assert net._train_function.experimental_get_tracing_count() == 1


def test_copied_child_predicts_as_the_supernet(macro_net):
    net, space = macro_net, macro_net.space
    for arch in architectures(space, 3):
        net.train_step(IMAGES, LABELS, arch)
    for arch in architectures(space, 3)[1:]:
        child = space.build_child(arch)
        net.copy_weights_to(child, space.decode(arch))
        np.testing.assert_allclose(
            child.predict(IMAGES, verbose=0), net.predict(IMAGES, arch), atol=1e-5
        )
        # Batch statistics, as eval_step scores: the child in training mode (no dropout).
        probabilities = child(IMAGES, training=True).numpy()
        accuracy = np.mean(probabilities.argmax(-1) == LABELS)
        assert float(net.eval_step(IMAGES, LABELS, arch)) == pytest.approx(accuracy)


def test_a_strided_stem_supernet_trains_and_copies_its_children():
    space = ENASMacro((12, 12, 1), num_classes=3, num_layers=3, filters=4, dropout=0.0, stem_strides=2)
    net = MacroSupernet(space)
    images = RNG.random((8, 12, 12, 1), dtype=np.float32)
    for arch in architectures(space, 2):
        assert np.isfinite(float(net.train_step(images, LABELS[:8], arch)["loss"]))
    arch = space.random_encoding(7)
    child = space.build_child(arch)
    net.copy_weights_to(child, space.decode(arch))
    assert child.get_layer("stem").output.shape[1:3] == (6, 6)
    np.testing.assert_allclose(child.predict(images, verbose=0), net.predict(images, arch), atol=1e-5)


def test_eval_and_predict_leave_every_weight_alone(macro_net):
    net = macro_net
    arch = net.space.random_encoding(4)
    net.train_step(IMAGES, LABELS, arch)
    before = snapshot(net)
    net.eval_step(IMAGES, LABELS, arch)
    net.predict(IMAGES, arch)
    assert not changed_blocks(before, snapshot(net))


def test_a_step_changes_exactly_the_weights_of_the_sampled_child(macro_net):
    net = MacroSupernet(macro_net.space, entangled=False)
    reset_momentum(net)
    encoding = net.space.random_encoding(5)
    child = net.space.build_child(encoding, compile=False)
    before = snapshot(net)
    net.train_step(IMAGES, LABELS, encoding)
    sampled = {layer.name for layer in child.layers if layer.weights}
    assert changed_blocks(before, snapshot(net)) == sampled


def test_entangled_ops_train_the_projection_and_the_sampled_kernel_window(macro_net):
    net = macro_net
    reset_momentum(net)
    encoding = net.space.random_encoding(6)
    encoding[net.space.layer_offset(0)] = net.space.OPS.index("conv3x3")
    block = net.model.blocks[net.space.block_name("layer_ops", layer=0)]
    assert net.model.blocks[net.space.block_name("op", layer=0, op="maxpool3x3")] is block
    before = {weight.path: np.array(weight) for weight in block.weights}
    net.train_step(IMAGES, LABELS, encoding)
    after = {weight.path: np.array(weight) for weight in block.weights}
    moved = {path for path in before if not np.array_equal(before[path], after[path])}
    name = block.name
    assert f"{name}/project/conv/kernel" in moved
    assert {f"{name}/conv_kernel", f"{name}/conv3x3_bn/gamma"} <= moved
    assert not moved & {f"{name}/depthwise_kernel", f"{name}/pointwise_kernel", f"{name}/conv5x5_bn/gamma"}
    kernel_change = after[f"{name}/conv_kernel"] != before[f"{name}/conv_kernel"]
    assert kernel_change[1:4, 1:4].any() and not kernel_change[[0, 4]].any()
    assert not kernel_change[:, [0, 4]].any()


def test_the_reference_supernet_gives_every_op_its_own_weights(macro_net):
    space = macro_net.space
    separate = MacroSupernet(space, entangled=False)
    entangled_count = sum(int(np.prod(w.shape)) for w in macro_net.model.trainable_weights)
    separate_count = sum(int(np.prod(w.shape)) for w in separate.model.trainable_weights)
    assert separate_count > entangled_count
    for arch in architectures(space, 2):
        separate.train_step(IMAGES, LABELS, arch)
        child = separate.build_child(arch)
        np.testing.assert_allclose(
            child.predict(IMAGES, verbose=0), separate.predict(IMAGES, arch), atol=1e-5
        )


def test_state_round_trip_and_learning_rate(macro_net, tmp_path):
    net = macro_net
    arch = net.space.random_encoding(7)
    net.set_epoch(5)
    assert float(net.optimizer.learning_rate) == pytest.approx(cosine_restart_learning_rate(5))
    state = net.get_state()
    expected = net.predict(IMAGES, arch).numpy()
    net.save(tmp_path / "supernet.npz")
    net.train_step(IMAGES, LABELS, arch)
    net.set_epoch(11)
    assert not np.allclose(net.predict(IMAGES, arch), expected)
    net.set_state(state)
    np.testing.assert_allclose(net.predict(IMAGES, arch), expected, atol=1e-6)
    net.train_step(IMAGES, LABELS, arch)
    net.load(tmp_path / "supernet.npz")
    np.testing.assert_allclose(net.predict(IMAGES, arch), expected, atol=1e-6)
    assert net.epoch == 5 and float(net.optimizer.learning_rate) == pytest.approx(0.02525)


def test_fine_tuned_candidates_train_on_the_same_minibatches_and_a_schedule_keeps_its_rate():
    space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)
    net = MacroSupernet(space, optimizer=keras.optimizers.SGD(schedule))
    before = [np.array(v) for v in net.model.variables]
    drawn = []

    def training_batches():
        drawn.append(0)
        return cycle((IMAGES, LABELS), 4, np.random.default_rng(3))  # the same order on every call

    arch = space.random_encoding(2)
    index, scores, state = best_fine_tuned(net, [arch, arch], training_batches, IMAGES, LABELS, steps=3)
    # One fresh stream per candidate: the same child fine-tuned on the same minibatches scores the same.
    assert len(drawn) == 2 and scores[0] == scores[1] and index == 0
    # The shared weights are back as they were; the winner's state holds its fine-tuned ones.
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, net.model.variables))
    assert any(not np.array_equal(a, b) for a, b in zip(before, state["model"]))
    with pytest.raises(TypeError):  # what fine-tuning leaves alone: the schedule sets the rate
        net.optimizer.learning_rate = 0.1


def test_bad_arguments_name_the_value(macro_net):
    with pytest.raises(ValueError, match="learning_rate.*-0.1"):
        MacroSupernet(macro_net.space, learning_rate=-0.1)
    with pytest.raises(ValueError, match="6 integers"):
        macro_net.train_step(IMAGES, LABELS, [0, 1, 2])
    with pytest.raises(ValueError, match="supernet has no layer named 'other'"):
        macro_net.model.shared_weights(keras.layers.Dense(1, name="other"))


def test_recalibration_gives_the_child_its_own_statistics(macro_net):
    net, space, images = macro_net, macro_net.space, IMAGES
    arch = space.random_encoding(11)
    weights = [variable.numpy().copy() for variable in net.model.trainable_variables]
    net.recalibrate(images, arch)
    # Inference with recalibrated statistics reproduces batch-statistics inference on the calibration batch.
    logits, _ = net.model.forward(tf.constant(images, tf.float32), tf.constant(arch), batch_statistics=True)
    np.testing.assert_allclose(net.predict(images, arch).numpy(), tf.nn.softmax(logits).numpy(), atol=1e-2)
    other = space.random_encoding(12)
    net.recalibrate(images, other)
    assert not np.allclose(net.predict(images, arch).numpy(), tf.nn.softmax(logits).numpy(), atol=1e-3)
    for before, variable in zip(weights, net.model.trainable_variables):
        np.testing.assert_array_equal(before, variable.numpy())


def test_evaluate_scores_every_image_with_one_trace(macro_net):
    net, space, images, labels = macro_net, macro_net.space, IMAGES, LABELS
    counts = dict(net.trace_counts)
    scores = [net.evaluate(images, labels, space.random_encoding(seed), calibration_images=images, batch_size=5) for seed in range(3)]
    batch_scores = [net.evaluate(images, labels, space.random_encoding(seed), batch_size=len(images)) for seed in range(3)]
    for score in scores + batch_scores:
        assert 0.0 <= score <= 1.0 and score * len(images) == pytest.approx(round(score * len(images)))
    assert net.trace_counts["recalibrate"] - counts["recalibrate"] <= 1
    assert net.trace_counts["count"] - counts["count"] <= 1
    with pytest.raises(ValueError, match="empty"):
        net.evaluate(images[:0], labels[:0], space.random_encoding(0))


def test_a_fair_step_trains_every_op_of_every_layer_on_the_minibatch(macro_net):
    net = MacroSupernet(macro_net.space)
    children = net.space.fair_encodings(seed=3)
    assert_every_op_once_per_position(net.space, children)
    assert_fair_step_sums_its_childrens_steps(net, IMAGES, LABELS, children)
    net.fair_train_step(IMAGES, LABELS, children[:2])
    assert net.trace_counts["fair_train"] == 1
    with pytest.raises(ValueError, match=r"matrix of encodings of length 6, got shape \(6,\)"):
        net.fair_train_step(IMAGES, LABELS, children[0])
