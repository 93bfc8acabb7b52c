"""bfloat16 on the CPU: the batch-norm kernel, then whole children, against float32.

CPUs with AVX512-BF16 or AMX run convolutions in bfloat16 faster than in float32
(a stack of 5 x 5 ones four times as fast on an Intel Xeon with AMX), but
TensorFlow's fused batch-norm kernel for bfloat16 inputs is far slower than its
float32 one, so `keras_rlnas`'s `BatchNorm` (and the
supernets' stacked normalisation) cast bfloat16 inputs to float32 around it.
This script times, each a training step (forward and backward) repeated and
measured round-robin so that a busy host slows every variant alike:

1. the fused kernel alone on a `--batch` x 28 x 28 x `--filters` tensor: float32
   inputs, bfloat16 inputs straight into the kernel, and bfloat16 inputs through
   `fused_normalisation` (the cast);
2. an ENAS macro child (6 layers x 24 filters, the main job's; `--run`,
   `--architecture` or the `retrain_recipe.py` default child) trained with `fit` on Fashion-MNIST
   images under the `float32` and `mixed_bfloat16` policies.

Prints steps or images per second, each variant's ratio to float32, and the
load average. Compare on the CPU a run uses: without bfloat16 instructions
(`grep -o 'avx512_bf16\\|amx_bf16' /proc/cpuinfo`) bfloat16 is emulated and slow.

    python benchmarks/bfloat16_speed.py                  # about a minute
    python benchmarks/bfloat16_speed.py --repeats 3 --images 6400
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from retrain_recipe import load_child  # noqa: E402

import keras_rlnas  # noqa: E402
from keras_rlnas.layers.batch_norm import fused_normalisation  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def kernel_steps(inputs, kernel, steps):
    """Steps per second of a forward and backward pass of `kernel` on `inputs`."""
    channels = inputs.shape[-1]
    gamma, beta = tf.Variable(tf.ones([channels])), tf.Variable(tf.zeros([channels]))
    mean, variance = tf.zeros([channels]), tf.ones([channels])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = kernel(inputs, gamma, beta, mean, variance)
            loss = tf.reduce_sum(tf.cast(outputs, tf.float32))
        return tape.gradient(loss, [inputs, gamma, beta])

    step()  # traced, untimed
    began = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - began)


def raw_kernel(inputs, gamma, beta, mean, variance):
    outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
        inputs, gamma, beta, mean=mean, variance=variance, epsilon=1e-5, is_training=True,
        exponential_avg_factor=0.1)
    return outputs


def cast_kernel(inputs, gamma, beta, mean, variance):
    outputs, _, _ = fused_normalisation(inputs, gamma, beta, mean, variance, "train", 0.9, 1e-5)
    return outputs


def child_images_per_second(space, child, policy, x, y, batch):
    """Training images per second of `child` built under `policy`, its first epoch untimed."""
    keras.config.set_dtype_policy(policy)
    try:
        model = space.build_child(child)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile(optimizer=model.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[: batch * 4], y[: batch * 4], batch_size=batch, epochs=1, verbose=0)
    began = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return len(x) / (time.perf_counter() - began)


def print_rates(title, rates, unit):
    print(title)
    first = max(next(iter(rates.values())))
    for name, values in rates.items():
        print(f"  {name:<36} {max(values):8.1f} {unit} at best, {max(values) / first:.2f} of float32  "
              f"({' '.join(f'{v:.1f}' for v in values)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="minibatch (the main job's final training: 64)")
    parser.add_argument("--filters", type=int, default=24)
    parser.add_argument("--steps", type=int, default=40, help="kernel steps per timing")
    parser.add_argument("--images", type=int, default=3200, help="training images per child timing")
    parser.add_argument("--repeats", type=int, default=2, help="round-robin passes over the variants")
    parser.add_argument("--run", help="a `keras-rlnas retrain` directory whose child to time")
    parser.add_argument("--architecture", help="JSON of the child's {name: value}")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]

    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.batch, 28, 28, args.filters)).astype("float32")
    kernels = {
        "fused kernel, float32": (tf.constant(images), raw_kernel),
        "fused kernel, bfloat16": (tf.constant(images, tf.bfloat16), raw_kernel),
        "fused_normalisation, bfloat16 (cast)": (tf.constant(images, tf.bfloat16), cast_kernel),
    }
    rates = {name: [] for name in kernels}
    for _ in range(args.repeats):
        for name, (inputs, kernel) in kernels.items():
            rates[name].append(kernel_steps(inputs, kernel, args.steps))
            loads.append(os.getloadavg()[0])
    print_rates(f"batch norm, {args.batch} x 28 x 28 x {args.filters}, forward + backward:", rates, "steps/s")

    child = load_child(args)
    (x, y), _, _, info = keras_rlnas.datasets.load_arrays("fashion_mnist")
    x, y = x[: args.images], y[: args.images]
    space = keras_rlnas.ENASMacro(info.input_shape, info.num_classes, num_layers=6, filters=24)
    rates = {policy: [] for policy in POLICIES}
    for _ in range(args.repeats):
        for policy in POLICIES:
            rates[policy].append(child_images_per_second(space, child, policy, x, y, args.batch))
            loads.append(os.getloadavg()[0])
    print_rates(f"ENAS macro child (6 x 24), fit on minibatches of {args.batch}:", rates, "images/s")
    print(f"load average (1 min) from {loads[0]:.2f} to {loads[-1]:.2f}, highest {max(loads):.2f}")


if __name__ == "__main__":
    main()
