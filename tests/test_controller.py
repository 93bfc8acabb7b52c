import keras
import keras_tuner
import numpy as np
import pytest

from keras_rlnas import DecisionMap
from keras_rlnas.controller import Controller, Decision, steps
from keras_rlnas.spaces import ENASMacro, ENASMicro


def _mixed_decisions():
    return [
        Decision("cell[0].anchor", "anchor", group="cell", anchor=0),
        Decision("cell[1].anchor", "anchor", group="cell", anchor=1),
        Decision("cell[2].input[0]", "pick", size=2, group="cell", key="cell.input"),
        Decision("cell[2].op", "categorical", size=5, key="cell.op", group="cell", anchor=2),
        Decision("layers[0].op", "categorical", size=3, key="layers.op", group="layers", anchor=0),
        Decision("layers[1].op", "categorical", size=3, key="layers.op", group="layers"),
        Decision("layers[1].skip", "skip", size=1, group="layers", anchor=1),
        Decision("layers[2].skip", "skip", size=2, group="layers", anchor=2),
        Decision("lr", "categorical", size=10),
    ]


def _probability(controller, actions):
    return float(np.exp(controller.score(actions).log_prob))


def test_bandit_moves_probability_to_the_better_arm():
    controller = Controller([Decision("arm", "categorical", size=5)], seed=3, learning_rate=0.05)
    before = _probability(controller, [3])
    for _ in range(60):
        samples = [controller.sample() for _ in range(8)]
        controller.update(samples, [1.0 if s.actions[0] == 3 else 0.0 for s in samples])
    after = _probability(controller, [3])
    assert before < 0.35
    assert after > 0.8


def test_numpy_sampling_and_tensorflow_scoring_agree():
    controller = Controller(_mixed_decisions(), seed=0, temperature=2.0, tanh_constant=1.5)
    samples = [controller.sample() for _ in range(6)]
    # Leave decisions out (inactive hyperparameters) in some samples.
    partial = list(samples[0].actions)
    partial[5] = partial[6] = None
    samples.append(controller.score(partial))
    log_prob, entropy = controller.log_probs(samples)
    np.testing.assert_allclose(log_prob, [s.log_prob for s in samples], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(entropy, [s.entropy for s in samples], rtol=1e-4, atol=1e-4)


def test_skip_attention_learns_a_connection_pattern():
    decisions = []
    for i in range(4):
        decisions += [
            Decision(f"layers[{i}].op", "categorical", size=3, key="layers.op"),
            Decision(f"layers[{i}].skip", "skip", size=i, group="layers", anchor=i),
        ]
    controller = Controller(decisions, seed=1, learning_rate=0.005)
    target = {(2, 0): 1, (3, 1): 1, (3, 0): 0, (2, 1): 0, (1, 0): 1, (3, 2): 0}

    def reward(sample):
        return sum(int(sample.actions[2 * i + 1][j] == bit) for (i, j), bit in target.items())

    # 200 samples put the two means' sampling error near 0.1 each.
    first = np.mean([reward(controller.sample()) for _ in range(200)])
    for _ in range(120):
        samples = [controller.sample() for _ in range(8)]
        controller.update(samples, [reward(s) for s in samples])
    last = np.mean([reward(controller.sample()) for _ in range(200)])
    assert last > first + 1.5


def test_pick_attention_learns_which_earlier_node():
    decisions = _mixed_decisions()[:4]
    controller = Controller(decisions, seed=2, learning_rate=0.05)
    for _ in range(50):
        samples = [controller.sample() for _ in range(8)]
        controller.update(samples, [float(s.actions[2] == 0) for s in samples])
    picks = [controller.sample().actions[2] for _ in range(40)]
    assert picks.count(0) >= 34


def test_skip_penalty_pulls_the_skip_rate_to_its_target():
    decisions = [Decision(f"layers[{i}].skip", "skip", size=i, group="layers", anchor=i) for i in range(6)]
    controller = Controller(decisions, seed=0, skip_weight=5.0, skip_target=0.1, learning_rate=0.05)
    for _ in range(60):
        samples = [controller.sample() for _ in range(8)]
        controller.update(samples, [0.0] * 8)
    bits = [b for _ in range(30) for a in controller.sample().actions for b in a]
    assert np.mean(bits) < 0.2


def test_skip_bits_under_the_tanh_constant_reach_the_reference_range():
    # The reference samples a bit from softmax([-s, s]): sigmoid(2 * 1.5) = 0.95 at
    # most, where a logit of s alone would stop at sigmoid(1.5) = 0.82.
    decisions = [Decision(f"layers[{i}].skip", "skip", size=i, group="layers", anchor=i) for i in range(4)]
    controller = Controller(decisions, seed=0, tanh_constant=1.5, learning_rate=0.05)
    for _ in range(80):
        samples = [controller.sample() for _ in range(8)]
        controller.update(samples, [float(sum(b for a in s.actions for b in a)) for s in samples])
    bits = [b for _ in range(60) for a in controller.sample().actions for b in a]
    assert np.mean(bits) > 0.88


def test_the_first_skip_step_passes_the_start_token_on():
    # The reference code's first layer has no earlier layer to connect to; the LSTM steps
    # once more and then reads the start token (not the op's embedding, which it has just read).
    hp = keras_tuner.HyperParameters()
    ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4).declare_hyperparameters(hp)
    decisions = DecisionMap().sync(hp)
    assert [d.name for d in decisions[:3]] == ["layers[0].op", "layers[0].skip", "layers[1].op"]
    assert decisions[1].size == 0 and decisions[1].anchor == 0 and decisions[0].anchor is None
    controller = Controller(decisions, seed=0, init_range=0.5)
    weights = controller.weights()
    walk = steps.Walk(np, weights, controller.config, weights["start"])
    walk.step(decisions[0], steps.Given(np.array([[2]])))
    np.testing.assert_array_equal(walk.inputs, weights["embedding/layers.op#6"][[2]])
    outcome = walk.step(decisions[1], steps.Given(np.zeros((1, 0), np.int32)))
    assert outcome.action.shape == (1, 0) and float(outcome.log_prob[0]) == 0.0
    np.testing.assert_array_equal(walk.inputs, weights["start"])
    # Sampled, it is an empty action; scored again, it takes the same steps.
    sample = controller.sample()
    assert sample.actions[1] == () and controller.score(sample.actions).log_prob == pytest.approx(sample.log_prob)
    np.testing.assert_allclose(controller.log_probs([sample])[0], [sample.log_prob], rtol=1e-5)


def test_a_cell_node_picks_both_inputs_then_both_ops_and_ends_with_its_anchor():
    # The reference code's cells: index, index, op, op, then one more LSTM step whose
    # state is the node's anchor, after which the start token is read.
    hp = keras_tuner.HyperParameters()
    space = ENASMicro((8, 8, 1), num_classes=3, num_cells=1, num_nodes=2, filters=4)
    space.declare_hyperparameters(hp)
    decision_map = DecisionMap()
    decisions = decision_map.sync(hp)
    assert [d.name for d in decisions[:8]] == [
        "normal_cell[0].anchor", "normal_cell[1].anchor",
        "normal_cell[2].input[0]", "normal_cell[2].input[1]", "normal_cell[2].op[0]", "normal_cell[2].op[1]",
        "normal_cell[2].anchor", "normal_cell[3].input[0]",
    ]
    assert decisions[6].kind == "anchor" and decisions[6].anchor == 2 and decisions[5].anchor is None
    assert sorted(space.anchor_steps) == [i for i, d in enumerate(decisions) if not d.chooses]
    controller = Controller(decisions, seed=0, init_range=0.5)
    weights = controller.weights()
    walk = steps.Walk(np, weights, controller.config, weights["start"])
    for decision, action in zip(decisions[:6], (0, 0, 0, 1, 3, 2)):
        walk.step(decision, steps.Given(np.array([[action]])))
    assert not np.allclose(walk.inputs, weights["start"])
    walk.step(decisions[6], steps.Given(np.array([[0]])))
    np.testing.assert_array_equal(walk.inputs, weights["start"])
    assert set(walk.anchors["normal_cell"]) == {0, 1, 2}
    # Sampled and scored again, the steps agree; the encoding puts each node's ops after their inputs.
    sample = controller.sample()
    np.testing.assert_allclose(controller.log_probs([sample])[0], [sample.log_prob], rtol=1e-5)
    values = decision_map.values_from_actions(sample.actions, np.random.default_rng(0))
    np.testing.assert_array_equal(space.encoding_from_actions(sample.actions), space.encode(values))


def test_state_round_trip_continues_identically(tmp_path):
    first = Controller(_mixed_decisions(), seed=5, learning_rate=0.01)
    for _ in range(3):
        samples = [first.sample() for _ in range(4)]
        first.update(samples, [float(i) for i in range(4)])
    first.save(tmp_path / "state.npz")
    second = Controller(seed=123, learning_rate=0.01)
    second.load(tmp_path / "state.npz")
    assert [d.name for d in second.decisions] == [d.name for d in first.decisions]
    a = [first.sample() for _ in range(4)]
    b = [second.sample() for _ in range(4)]
    assert [s.actions for s in a] == [s.actions for s in b]
    stats_a = first.update(a, [1.0, 0.0, 2.0, 0.5])
    stats_b = second.update(b, [1.0, 0.0, 2.0, 0.5])
    assert stats_a == stats_b
    arrays_a, meta_a = first.get_state()
    arrays_b, meta_b = second.get_state()
    assert meta_a.pop("config")["seed"] == 5 and meta_b.pop("config")["seed"] == 123
    assert meta_a == meta_b and sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)


def test_optimizer_is_a_keras_adam_saved_with_the_weights(tmp_path):
    controller = Controller.from_preset("enas_macro", _mixed_decisions(), seed=0, clip_norm=2.0)
    optimizer = controller.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert (optimizer.beta_1, optimizer.epsilon, optimizer.global_clipnorm) == (0.0, 1e-3, 2.0)
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)
    controller.update([controller.sample() for _ in range(3)], [0.0, 1.0, 2.0])
    arrays, _ = controller.get_state()
    assert arrays["optimizer/controller_adam/iteration"] == 1
    moments = [name for name in arrays if name.startswith("optimizer/") and name.endswith("_momentum")]
    assert len(moments) == len(controller.weights())
    # A state from a controller with other decisions is refused, naming what is missing.
    other = Controller([Decision("op", "categorical", size=2)], seed=0)
    with pytest.raises(ValueError, match="lacks the array 'head/cell.op#5/kernel'"):
        Controller(_mixed_decisions(), seed=0).set_state(*other.get_state())


def test_extend_keeps_the_optimizer_moments_of_existing_weights():
    controller = Controller([Decision("a", "categorical", size=3)], seed=0)
    controller.update([controller.sample() for _ in range(4)], [0.0, 1.0, 2.0, 3.0])
    before, _ = controller.get_state()
    controller.extend([Decision("b", "categorical", size=2)])
    after, _ = controller.get_state()
    assert set(before) < set(after)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    controller.update([controller.sample() for _ in range(2)], [0.0, 1.0])
    assert controller.get_state()[0]["optimizer/controller_adam/iteration"] == 2


def test_extend_keeps_learned_heads():
    controller = Controller([Decision("layers[0].op", "categorical", size=3, key="layers.op")], seed=0, learning_rate=0.05)
    for _ in range(30):
        samples = [controller.sample() for _ in range(8)]
        controller.update(samples, [float(s.actions[0] == 2) for s in samples])
    head = controller.weights()["head/layers.op#3/kernel"].copy()
    controller.extend([Decision("layers[1].op", "categorical", size=3, key="layers.op")])
    np.testing.assert_array_equal(controller.weights()["head/layers.op#3/kernel"], head)
    # The new layer shares the learned head, so it prefers op 2 at once.
    assert np.mean([controller.sample().actions[1] == 2 for _ in range(40)]) > 0.6
    controller.update([controller.sample()], [1.0])


def test_greedy_sampling_is_deterministic():
    controller = Controller(_mixed_decisions(), seed=0)
    assert controller.sample(greedy=True).actions == controller.sample(greedy=True).actions


@pytest.mark.parametrize(
    "option, value",
    [("units", 0), ("num_layers", 1.5), ("learning_rate", -1.0), ("temperature", 0.0),
     ("baseline_decay", 1.0), ("skip_target", 1.5), ("entropy_weight", -0.1), ("clip_norm", 0),
     ("learning_rate", "1e-3"), ("skip_weight", None), ("units", True)],
)
def test_bad_options_name_the_value(option, value):
    with pytest.raises(ValueError, match=rf"`{option}`.*{value!r}"):
        Controller(**{option: value})


def test_bad_decisions_and_rewards_are_rejected():
    with pytest.raises(ValueError, match="'op'.*size=0"):
        Decision("op", "categorical", size=0)
    with pytest.raises(ValueError, match="unknown kind 'tree'"):
        Decision("x", "tree", size=2)
    with pytest.raises(ValueError, match="'op'.*`size` must be an int, got 2.5"):
        Decision("op", "categorical", size=2.5)
    with pytest.raises(ValueError, match="`anchor` must be a position >= 0, got -1"):
        Decision("layers[0].anchor", "anchor", group="layers", anchor=-1)
    controller = Controller([Decision("op", "categorical", size=2)], seed=0)
    with pytest.raises(ValueError, match="nan"):
        controller.update([controller.sample()], [float("nan")])
    with pytest.raises(ValueError, match="Duplicate decision name 'op'"):
        controller.extend([Decision("op", "categorical", size=2)])
    with pytest.raises(ValueError, match="Unknown preset 'nope'"):
        Controller.from_preset("nope")


def test_presets_carry_the_papers_settings():
    assert Controller.from_preset("nas").config["units"] == 35
    enas = Controller.from_preset("enas_macro").config
    # The reference code's search scripts set no temperature (the paper's text gives 5).
    assert (enas["temperature"], enas["tanh_constant"], enas["skip_weight"], enas["baseline_decay"]) == (None, 1.5, 0.8, 0.99)


def test_policy_learner_batches_rewards_and_its_saved_state_resumes_exactly(tmp_path):
    from keras_rlnas.controller.learner import PolicyLearner

    hp = keras_tuner.HyperParameters()
    hp.Choice("units", [16, 32, 64])
    hp.Boolean("dropout")

    def run(learner, rewards):
        for reward in rewards:
            values, actions = learner.sample(hp)
            learner.add_reward(actions, reward + float(values["units"] == 64), trial=str(reward))
        return learner

    first = run(PolicyLearner(update_every=3, controller_options={"seed": 4}), range(7))
    assert [step["step"] for step in first.history] == [0, 1] and len(first.pending) == 1
    first.save(tmp_path, extra={"epoch": 7})
    second = PolicyLearner(update_every=3, controller_options={"seed": 99})
    assert second.load(tmp_path) == {"epoch": 7}
    run(first, range(5))
    run(second, range(5))
    assert first.history == second.history and first.pending == second.pending
    np.testing.assert_array_equal(first.controller.weights()["attention/v"], second.controller.weights()["attention/v"])
    # Only the committed array file and the one before it are kept.
    first.save(tmp_path)
    first.save(tmp_path)
    assert len(list(tmp_path.glob("controller-*.npz"))) <= 2
    # A saved controller whose decisions are not the space's is refused by name, not misread.
    other = keras_tuner.HyperParameters()
    other.Choice("units", [16, 32])
    stranger = PolicyLearner(update_every=3)
    stranger.load(tmp_path)
    with pytest.raises(ValueError, match=r"decision 0 is 'units' \(categorical, size 3\).*size 2\).*overwrite=True"):
        stranger.sample(other)
    with pytest.raises(ValueError, match="update_every.*0"):
        PolicyLearner(update_every=0)
