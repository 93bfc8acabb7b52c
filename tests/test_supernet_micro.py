import re

import numpy as np
import pytest
import tensorflow as tf
from supernet_checks import (
    assert_every_op_once_per_position,
    assert_fair_step_sums_its_childrens_steps,
)

from keras_rlnas.spaces import ENASMacro, ENASMicro
from keras_rlnas.supernet import MacroSupernet, MicroSupernet

RNG = np.random.default_rng(0)
IMAGES = RNG.random((16, 8, 8, 1), dtype=np.float32)
LABELS = RNG.integers(0, 3, 16)


pytestmark = pytest.mark.usefixtures("quick_graph_compilation")


@pytest.fixture(scope="module")
def net():
    space = ENASMicro((8, 8, 1), num_classes=3, num_cells=1, num_nodes=2, filters=4, dropout=0.0)
    return MicroSupernet(space, share_sources=False)  # one weight slice per source read


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


def test_one_train_trace_serves_every_architecture(net):
    for seed in range(6):
        result = net.train_step(IMAGES, LABELS, net.space.random_encoding(seed))
        assert np.isfinite(float(result["loss"]))
    net.train_step(IMAGES, tf.one_hot(LABELS, 3), net.space.decode(net.space.random_encoding(9)))
    assert net.trace_counts["train"] == 1
    assert net._train_function.experimental_get_tracing_count() == 1


def test_copied_child_predicts_as_the_supernet(net):
    space = net.space
    for seed in range(3):
        net.train_step(IMAGES, LABELS, space.random_encoding(seed))
    # Seeds whose cells read the cell inputs through every op, at stride 1 and 2.
    for seed in (1, 3):
        arch = space.random_encoding(seed)
        child = net.copy_weights_to(space.build_child(arch), space.decode(arch))
        np.testing.assert_allclose(
            child.predict(IMAGES, verbose=0), net.predict(IMAGES, arch), atol=1e-5
        )
    assert net.trace_counts["predict"] == 1


def test_micro_step_changes_only_the_sampled_slices(net):
    for variable in net.optimizer.variables:
        if "momentum" in variable.path:
            variable.assign(np.zeros(variable.shape))
    encoding = net.space.random_encoding(6)
    child = net.space.build_child(encoding, compile=False)
    before = snapshot(net)
    net.train_step(IMAGES, LABELS, encoding)
    after = snapshot(net)
    # A child layer reading position j is slice j of a stacked supernet layer.
    weighted = [layer.name for layer in child.layers if layer.weights]
    assert changed_blocks(before, after) == {re.sub(r"_from\d+", "", name) for name in weighted}
    for name in weighted:
        match = re.search(r"_from(\d+)_", name)
        if match is None:
            continue
        stacked = re.sub(r"_from\d+", "", name)
        for old, new in zip(before[stacked], after[stacked]):
            others = [row for row in range(old.shape[0]) if row != int(match[1])]
            np.testing.assert_array_equal(old[others], new[others])
            assert not np.array_equal(old[int(match[1])], new[int(match[1])])


def test_the_space_must_be_a_micro_space():
    macro = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4)
    with pytest.raises(TypeError, match="ENASMicro"):
        MicroSupernet(macro)
    micro = ENASMicro((8, 8, 1), num_classes=3, num_cells=1, num_nodes=2, filters=4)
    with pytest.raises(TypeError, match="ENASMacro"):
        MacroSupernet(micro)


def test_shared_sources_keep_one_weight_set_per_slot_and_copy_it_to_children():
    space = ENASMicro((8, 8, 1), num_classes=3, num_cells=1, num_nodes=2, filters=4, dropout=0.0)
    shared = MicroSupernet(space)
    stacked = MicroSupernet(space, share_sources=False)

    def weight_count(supernet):
        return sum(int(np.prod(w.shape)) for w in supernet.model.trainable_weights)

    assert weight_count(shared) < weight_count(stacked)
    for seed in range(4):
        shared.train_step(IMAGES, LABELS, space.random_encoding(seed))
    assert shared.trace_counts["train"] == 1
    for seed in (1, 3):
        arch = space.random_encoding(seed)
        child = shared.copy_weights_to(space.build_child(arch), space.decode(arch))
        np.testing.assert_allclose(
            child.predict(IMAGES, verbose=0), shared.predict(IMAGES, arch), atol=1e-5
        )


def test_fair_encodings_cover_every_op_and_a_fair_step_sums_its_childrens_steps(net):
    children = net.space.fair_encodings(seed=1)
    assert_every_op_once_per_position(net.space, children)
    # Three of the five children keep the test short; the sum holds for any subset.
    assert_fair_step_sums_its_childrens_steps(net, IMAGES, LABELS, children[:3])
