"""ENAS supernet speed: omega-phase throughput against standalone children, theta-phase cost.

For a few random architectures, the supernet's train step (a different
architecture every step, as in the omega phase) and the same architectures
built standalone and trained with the same loss, L2 and Nesterov SGD in a
compiled step are timed interleaved, round after round, so both see the same
machine load. Prints images per second for both and their ratio (target: at
least 0.9), the cost of scoring one architecture on a validation minibatch
(theta phase and deriving), the number of traces, and the start-up cost.

    python benchmarks/enas_speed.py                  # macro space, 12 layers x 36 filters
    python benchmarks/enas_speed.py --space micro    # micro space, N=2, B=5, C=20
    python benchmarks/enas_speed.py --jit --dtype-policy mixed_float16   # on a GPU
    python benchmarks/enas_speed.py --separate-op-weights   # macro: the reference supernet's layout
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_rlnas.spaces import ENASMacro, ENASMicro  # noqa: E402
from keras_rlnas.supernet import build_supernet  # noqa: E402
from keras_rlnas.training import nesterov_sgd  # noqa: E402


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", choices=("macro", "micro"), default="macro")
    parser.add_argument("--image", type=int, nargs=3, default=(28, 28, 1), metavar=("H", "W", "C"))
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--layers", type=int, default=12, help="macro: number of layers")
    parser.add_argument("--filters", type=int, default=None, help="36 (macro) / 20 (micro)")
    parser.add_argument("--cells", type=int, default=2, help="micro: normal cells per stage")
    parser.add_argument("--nodes", type=int, default=5, help="micro: nodes per cell")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--archs", type=int, default=3, help="architectures timed")
    parser.add_argument("--rounds", type=int, default=4, help="timed steps per architecture")
    parser.add_argument("--eval-samples", type=int, default=20, help="architectures scored")
    parser.add_argument("--jit", action="store_true", help="XLA-compile both sides")
    parser.add_argument("--dtype-policy", default=None, help="e.g. mixed_float16")
    parser.add_argument(
        "--separate-op-weights",
        action="store_true",
        help="macro: every op its own weights (the reference supernet), not entangled ones",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def make_space(args):
    if args.space == "macro":
        return ENASMacro(
            tuple(args.image), args.classes, num_layers=args.layers, filters=args.filters or 36
        )
    return ENASMicro(
        tuple(args.image),
        args.classes,
        num_cells=args.cells,
        num_nodes=args.nodes,
        filters=args.filters or 20,
    )


def standalone_step(space, encoding, args):
    """A compiled train step of the standalone child, matching the supernet's."""
    if args.dtype_policy:
        keras.config.set_dtype_policy(args.dtype_policy)
    try:
        child = space.build_child(encoding, compile=False)
    finally:
        keras.config.set_dtype_policy("float32")
    logits_model = keras.Model(child.input, child.get_layer("head_dense").output)
    optimizer = nesterov_sgd()
    if args.dtype_policy == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    variables = logits_model.trainable_variables
    optimizer.build(variables)

    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(logits_model(images, training=True), tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            loss += tf.add_n([tf.cast(term, tf.float32) for term in logits_model.losses])
            scaled = optimizer.scale_loss(loss)
        optimizer.apply(tape.gradient(scaled, variables), variables)
        return loss

    return tf.function(step, jit_compile=args.jit, autograph=False), child.count_params()


def timed(fn, cpu_times=None):
    """Wall-clock seconds of `fn()`; its process CPU seconds go to `cpu_times`."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fn()
    float(result if not isinstance(result, dict) else result["loss"])  # waits for the device
    if cpu_times is not None:
        cpu_times.append(time.process_time() - start_cpu)
    return time.perf_counter() - start


def report_omega_throughput(net, encodings, children, images, labels, args):
    """Times supernet and standalone steps in interleaved rounds and prints their throughputs.

    Each round runs every architecture once on each side, alternating which
    side goes first, so both see the same machine load.
    """
    supernet_times, child_times, supernet_cpu, child_cpu = [], [], [], []
    for round_index in range(args.rounds):
        for k, (encoding, step) in enumerate(zip(encodings, children)):
            pair = [
                (
                    supernet_times,
                    supernet_cpu,
                    lambda encoding=encoding: net.train_step(images, labels, encoding),
                ),
                (child_times, child_cpu, lambda step=step: step(images, labels)),
            ]
            for times, cpu_times, fn in pair[:: 1 if (round_index + k) % 2 == 0 else -1]:
                times.append(timed(fn, cpu_times))
    supernet_rate = args.batch * len(supernet_times) / sum(supernet_times)
    child_rate = args.batch * len(child_times) / sum(child_times)
    print(
        f"omega phase ({args.archs} architectures x {args.rounds} rounds, batch {args.batch}): "
        f"supernet {supernet_rate:.1f} images/s, standalone children {child_rate:.1f} images/s, "
        f"ratio {supernet_rate / child_rate:.3f} (target >= 0.9)"
    )
    print(
        f"  median step: supernet {1000 * statistics.median(supernet_times):.1f} ms, "
        f"children {1000 * statistics.median(child_times):.1f} ms; "
        f"process CPU time per step: supernet {1000 * statistics.mean(supernet_cpu):.0f} ms, "
        f"children {1000 * statistics.mean(child_cpu):.0f} ms, "
        f"ratio {sum(child_cpu) / sum(supernet_cpu):.3f} (less sensitive to other processes)"
    )


def main():
    args = parse_arguments()
    devices = [device.device_type for device in tf.config.list_logical_devices()]
    print(f"TensorFlow {tf.__version__}, devices {devices}, {os.cpu_count()} CPU cores")
    if hasattr(os, "getloadavg"):
        print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    space = make_space(args)
    rng = np.random.default_rng(args.seed)
    images = tf.constant(rng.random((args.batch,) + tuple(args.image), dtype=np.float32))
    labels = tf.constant(rng.integers(0, args.classes, args.batch), tf.int32)

    start = time.perf_counter()
    options = {"entangled": False} if args.separate_op_weights else {}
    net = build_supernet(space, jit_compile=args.jit, dtype_policy=args.dtype_policy, **options)
    built = time.perf_counter() - start
    encodings = [space.random_encoding(args.seed + k) for k in range(args.archs)]
    first_step = timed(lambda: net.train_step(images, labels, encodings[0]))
    print(
        f"supernet: {len(net.model.trainable_variables)} trainable variables, "
        f"{net.model.count_params():,} weights; built in {built:.1f} s, "
        f"first train step (trace + graph set-up) {first_step:.1f} s"
    )

    children = []
    for encoding in encodings:
        step, params = standalone_step(space, encoding, args)
        setup = timed(lambda step=step: step(images, labels))
        children.append(step)
        print(f"child {len(children)}: {params:,} weights, first step {setup:.1f} s")
    for encoding in encodings[1:]:
        net.train_step(images, labels, encoding)  # every architecture once before timing

    report_omega_throughput(net, encodings, children, images, labels, args)

    samples = [space.random_encoding(args.seed + 1000 + i) for i in range(args.eval_samples + 1)]
    first_eval = timed(lambda: net.eval_step(images, labels, samples[0]))
    eval_times = [timed(lambda s=s: net.eval_step(images, labels, s)) for s in samples[1:]]
    print(
        f"theta phase: scoring one architecture on a minibatch of {args.batch}: "
        f"{1000 * statistics.mean(eval_times):.1f} ms mean, "
        f"{1000 * statistics.median(eval_times):.1f} ms median "
        f"({args.eval_samples} fresh architectures; first call incl. trace {first_eval:.1f} s)"
    )
    served = len({tuple(e) for e in encodings} | {tuple(s) for s in samples})
    print(f"traces: {net.trace_counts} for {served} different architectures")


if __name__ == "__main__":
    main()
