"""Runs a ChoiceSupernet and an ENASTuner on one device and on two logical CPU devices; prints the differences.

Run as a script (the test suite starts it in a fresh process): TensorFlow's
logical devices can only be set before it initialises them.
"""

import sys
import tempfile

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402
from choice_models import build, data, plain_build  # noqa: E402

import keras_rlnas  # noqa: E402
from keras_rlnas.spaces import ENASMacro  # noqa: E402
from keras_rlnas.supernet import ChoiceSupernet, MacroSupernet  # noqa: E402

TOLERANCE = 1e-4


def supernet_run(strategy):
    tf.keras.utils.set_random_seed(0)
    net = ChoiceSupernet(plain_build, distribution_strategy=strategy)
    x, y = data(32)
    losses = [float(net.train_step(x, y, net.space.random_encoding(seed))["loss"]) for seed in range(4)]
    scores = [float(net.eval_step(x, y, net.space.random_encoding(seed))) for seed in range(4)]
    predictions = net.predict(x[:7], net.space.random_encoding(1)).numpy()
    return np.array(losses), np.array(scores), predictions, net.trace_counts


def batch_norm_runs(strategy):
    """Supernets with batch norm (per-replica statistics, so no exact match) train, score and recalibrate."""
    x, y = data(32)
    for net in (ChoiceSupernet(build, distribution_strategy=strategy),
                MacroSupernet(ENASMacro((8, 8, 1), 3, num_layers=3, filters=4), distribution_strategy=strategy)):
        arch = net.space.random_encoding(0)
        for seed in range(3):
            net.train_step(x, y, net.space.random_encoding(seed))
        score = net.evaluate(x, y, arch, calibration_images=x)
        child = net.build_child(arch)
        difference = float(np.max(np.abs(child.predict(x, verbose=0) - net.predict(x, arch).numpy())))
        print(type(net).__name__, "score", score, "child difference", difference, "traces", net.trace_counts)
        if not np.isfinite(score) or difference > TOLERANCE or net.trace_counts["train"] != 1:
            sys.exit(f"{type(net).__name__} under the strategy: score {score}, child difference {difference}")


def tuner_run(strategy):
    tf.keras.utils.set_random_seed(0)
    x, y = data(48)
    tuner = keras_rlnas.ENASTuner(
        plain_build, seed=0, controller_steps=2, controller_batch=2, derive_samples=3, derive_finalists=2, fine_tune_steps=2,
        batch_size=16, validation_batch_size=16, verbose=0, distribution_strategy=strategy,
        directory=tempfile.mkdtemp(), project_name="replicas",
    )
    tuner.search(x[:32], y[:32], validation_data=(x[32:], y[32:]), epochs=1)
    trials = [tuner.oracle.trials[t] for t in tuner.oracle.start_order]
    return [t.hyperparameters.values for t in trials], np.array([t.score for t in trials])


def main():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print("replicas", strategy.num_replicas_in_sync)
    one, two = supernet_run(None), supernet_run(strategy)
    for name, a, b in zip(("losses", "scores", "predictions"), one[:3], two[:3]):
        difference = float(np.max(np.abs(a - b)))
        print(name, difference)
        if difference > TOLERANCE:
            sys.exit(f"{name} differ by {difference}: {a} vs {b}")
    if two[3]["train"] != 1 or two[3]["eval"] != 1:
        sys.exit(f"traces {two[3]}")
    batch_norm_runs(strategy)
    architectures_one, scores_one = tuner_run(None)
    architectures_two, scores_two = tuner_run(strategy)
    print("architectures", architectures_one, architectures_two, "scores", scores_one, scores_two)
    if architectures_one != architectures_two or float(np.max(np.abs(scores_one - scores_two))) > TOLERANCE:
        sys.exit("the searches differ")
    print("same")


if __name__ == "__main__":
    main()
