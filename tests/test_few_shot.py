"""Few-shot sub-supernets: children grouped by their ops, each group trained and scored on its own copy."""

import numpy as np
import pytest

from keras_rlnas.spaces import ENASMacro, ENASMicro
from keras_rlnas.supernet import MacroSupernet
from keras_rlnas.supernet.few_shot import ConvCountGroups, FewShotSupernets


def macro_encoding(space, ops):
    """An encoding of `space` with these layer ops (indices into `space.OPS`) and no skips."""
    encoding = np.zeros(space.encoding_length, np.int32)
    for layer, op in enumerate(ops):
        encoding[space.layer_offset(layer)] = op
    return encoding


class RecordingSupernet:
    """A stand-in supernet whose state is a number that each train step raises by one."""

    def __init__(self, space):
        self.space, self.state, self.trained = space, 0, []
        self.optimizer = type("Optimizer", (), {"learning_rate": None})()

    def get_state(self):
        return self.state

    def set_state(self, state):
        self.state = state

    def train_step(self, images, labels, arch):
        self.trained.append((self.state, tuple(arch), float(self.optimizer.learning_rate)))
        self.state += 1
        return {"loss": float("nan") if isinstance(images, str) else 1.0}

    def evaluate(self, images, labels, arch, calibration_images=None, batch_size=256):
        return self.state


def test_conv_count_groups_cut_the_range_of_conv_counts_in_thirds():
    space = ENASMacro((8, 8, 1), 3, num_layers=6, filters=4)
    groups = ConvCountGroups(space)
    conv, pool = space.OPS.index("conv3x3"), space.OPS.index("maxpool3x3")
    assert len(groups) == 3 and groups.get_config() == {"bounds": [2, 4]}
    assert [groups(macro_encoding(space, [conv] * c + [pool] * (6 - c))) for c in range(7)] == [0, 0, 0, 1, 1, 2, 2]
    micro = ENASMicro((8, 8, 1), 3, num_cells=1, num_nodes=3, filters=4)
    micro_groups = ConvCountGroups(micro, bounds=(5,))
    assert len(micro_groups) == 2 and {micro_groups(micro.random_encoding(s)) for s in range(50)} == {0, 1}
    with pytest.raises(ValueError, match=r"bounds.*\(4, 2\)"):
        ConvCountGroups(space, bounds=(4, 2))
    with pytest.raises(ValueError, match=r"bounds.*\(6,\)"):
        ConvCountGroups(space, bounds=(6,))
    assert ConvCountGroups(ENASMacro((8, 8, 1), 3, num_layers=3, filters=4)).bounds == (1, 2)


def test_each_sub_supernet_trains_from_the_same_weights_on_its_own_group_only():
    space = ENASMacro((8, 8, 1), 3, num_layers=3, filters=4)
    supernet = RecordingSupernet(space)
    supernet.state = 100
    pool = [space.random_encoding(seed) for seed in range(60)]
    first_op = lambda encoding: int(encoding[0])  # noqa: E731
    sub_supernets = FewShotSupernets(supernet, first_op)
    batches = iter([(np.zeros((2, 8, 8, 1)), np.zeros(2))] * 100)
    sub_supernets.train(batches, pool, steps=4, learning_rate=0.1)

    groups = sorted({first_op(encoding) for encoding in pool})
    assert sorted(sub_supernets.groups) == groups and supernet.state == 100  # the supernet is left as it was
    assert len(supernet.trained) == 4 * len(groups)
    for start in range(0, len(supernet.trained), 4):
        steps = supernet.trained[start : start + 4]
        assert [state for state, _, _ in steps] == [100, 101, 102, 103]  # every copy starts from the trained weights
        assert len({arch[0] for _, arch, _ in steps}) == 1  # and sees its own group's children only
        rates = [rate for _, _, rate in steps]
        assert rates[0] == pytest.approx(0.1) and all(a > b for a, b in zip(rates, rates[1:]))
    assert all(state == 104 for state in sub_supernets.states.values())
    assert sub_supernets.evaluate(None, None, pool[0]) == 104 and supernet.state == 100


def test_a_child_without_a_sub_supernet_and_short_data_are_refused():
    space = ENASMacro((8, 8, 1), 3, num_layers=3, filters=4)
    supernet = RecordingSupernet(space)
    conv, pool_op = space.OPS.index("conv3x3"), space.OPS.index("avgpool3x3")
    sub_supernets = FewShotSupernets(supernet, ConvCountGroups(space, bounds=(1,)))
    sub_supernets.train(iter([(None, None)] * 3), [macro_encoding(space, [conv] * 3)], steps=3)
    with pytest.raises(KeyError, match="No sub-supernet for group 0"):
        sub_supernets.evaluate(None, None, macro_encoding(space, [pool_op] * 3))
    with pytest.raises(ValueError, match="ran out at step 1"):
        sub_supernets.train(iter([(None, None)]), [macro_encoding(space, [conv] * 3)], steps=3)
    with pytest.raises(ValueError, match="`pool` is empty"):
        sub_supernets.train(iter([]), [], steps=3)
    with pytest.raises(TypeError, match="group_of"):
        FewShotSupernets(supernet, "convs")
    supernet.state = 7
    with pytest.raises(FloatingPointError, match="group 1 diverged"):  # the stand-in's loss is NaN on these
        sub_supernets.train(iter([("nan", None)] * 3), [macro_encoding(space, [conv] * 3)], steps=3)
    assert supernet.state == 7  # the supernet's own weights are kept


def test_sub_supernets_of_a_real_supernet_differ_and_leave_its_weights_untouched():
    space = ENASMacro((8, 8, 1), 3, num_layers=3, filters=4)
    supernet = MacroSupernet(space)
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 8, 8, 1)).astype("float32"), np.arange(16) % 3
    supernet.train_step(x, y, space.random_encoding(0))  # builds the optimizer's variables
    before = [np.array(v) for v in supernet.model.variables]
    sub_supernets = FewShotSupernets(supernet, ConvCountGroups(space, bounds=(1,)))
    sub_supernets.train(iter([(x[:8], y[:8]), (x[8:], y[8:])] * 4), [space.random_encoding(s) for s in range(40)], steps=4)
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, supernet.model.variables))
    first, second = (sub_supernets.states[g]["model"] for g in (0, 1))
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))
    assert 0.0 <= sub_supernets.evaluate(x, y, space.random_encoding(3), calibration_images=x) <= 1.0
