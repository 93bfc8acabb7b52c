"""Speed of the supernet of a user's own model: omega-phase throughput against the standalone children.

The model is `examples/enas_custom_space.py`'s residual CNN (three
`LayerChoice`s, two `InputChoice`s). For a few random architectures the
`ChoiceSupernet`'s train step (a different architecture every step, as in
the omega phase) and the same architectures built standalone by the build
function and trained with the same loss and Nesterov SGD in a compiled step
are timed interleaved, round after round, so both see the same machine load.
Prints images per second for both and their ratio (target: at least 0.9, as
for the macro and micro spaces, `benchmarks/enas_speed.py`), the cost of
scoring an architecture, and the traces per step.

The supernet normalises the model's Keras `BatchNormalization` layers with
the fused kernel (`keras_rlnas.layers.batch_norm.fused_call`); the children
are timed twice: as Keras builds them, and with the same fused kernel
installed, which isolates the cost of switching between candidates.

    python benchmarks/enas_custom_speed.py --rounds 6
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

from enas_custom_space import build  # noqa: E402
from enas_speed import report_omega_throughput, timed  # noqa: E402  (this script's folder is on the path)

from keras_rlnas.layers.batch_norm import fused_call  # noqa: E402
from keras_rlnas.supernet import ChoiceSupernet  # noqa: E402
from keras_rlnas.supernet.custom import PROBABILITY_FLOOR  # noqa: E402
from keras_rlnas.training import nesterov_sgd  # noqa: E402


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--archs", type=int, default=3, help="architectures timed")
    parser.add_argument("--rounds", type=int, default=4, help="timed steps per architecture")
    parser.add_argument("--eval-samples", type=int, default=10, help="architectures scored")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def _all_layers(model):
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _all_layers(layer)


def standalone_step(space, encoding, fused_normalisation=False):
    """A compiled train step of the standalone child with the supernet's loss and optimizer."""
    child = space.build_child(encoding)
    if fused_normalisation:
        for layer in _all_layers(child):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.call = fused_call(layer)
    optimizer = nesterov_sgd()
    variables = child.trainable_variables
    optimizer.build(variables)

    def step(images, labels):
        with tf.GradientTape() as tape:
            probabilities = tf.cast(child(images, training=True), tf.float32)
            logits = tf.math.log(tf.clip_by_value(probabilities, PROBABILITY_FLOOR, 1.0))
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return tf.function(step, autograph=False), child.count_params()


def main():
    args = parse_arguments()
    devices = [device.device_type for device in tf.config.list_logical_devices()]
    print(f"TensorFlow {tf.__version__}, devices {devices}, {os.cpu_count()} CPU cores")
    if hasattr(os, "getloadavg"):
        print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    rng = np.random.default_rng(args.seed)
    images = tf.constant(rng.random((args.batch, 28, 28, 1), dtype=np.float32))
    labels = tf.constant(rng.integers(0, 10, args.batch), tf.int32)

    start = time.perf_counter()
    net = ChoiceSupernet(build)
    space = net.space
    print(f"supernet: {len(space.slots)} decisions {[slot.name for slot in space.slots]}, "
          f"{net.model.count_params():,} weights, built in {time.perf_counter() - start:.1f} s")
    encodings = [space.random_encoding(args.seed + k) for k in range(args.archs)]
    print(f"first train step (trace): {timed(lambda: net.train_step(images, labels, encodings[0])):.1f} s")
    children, fused_children = [], []
    for encoding in encodings:
        step, params = standalone_step(space, encoding)
        fused_step, _ = standalone_step(space, encoding, fused_normalisation=True)
        timed(lambda step=step: step(images, labels))
        timed(lambda step=fused_step: step(images, labels))
        children.append(step)
        fused_children.append(fused_step)
        print(f"child {space.decode(encoding)}: {params:,} weights")
    for encoding in encodings[1:]:
        net.train_step(images, labels, encoding)

    print("against the children as Keras builds them:")
    report_omega_throughput(net, encodings, children, images, labels, args)
    print("against the children with the supernet's fused normalisation (the cost of switching alone):")
    report_omega_throughput(net, encodings, fused_children, images, labels, args)
    samples = [space.random_encoding(args.seed + 1000 + i) for i in range(args.eval_samples + 1)]
    timed(lambda: net.eval_step(images, labels, samples[0]))
    eval_times = [timed(lambda s=s: net.eval_step(images, labels, s)) for s in samples[1:]]
    print(f"theta phase: scoring one architecture on {args.batch} images: {1000 * statistics.mean(eval_times):.1f} ms mean")
    served = len({tuple(e) for e in encodings} | {tuple(s) for s in samples})
    steps = args.rounds * len(encodings) + len(encodings) + len(samples)
    print(f"traces: {net.trace_counts} for {served} different architectures over {steps} steps")


if __name__ == "__main__":
    main()
