"""Where an ENAS epoch's time goes on the CPU, and what a tf.data pipeline could win back.

The main job's search (`scripts/demo.sh`: macro space, 6 layers x 24 filters,
minibatches of 32, a 12,000-image slice of Fashion-MNIST) is timed in parts:

1. One whole ENAS epoch through `ENASTuner.search`, split into its phases as
   `ENASTuner.history` records them: the omega phase (training the shared
   weights), the controller's updates and the derivation.
2. Inside the omega phase, interleaved round after round so every way sees
   the same machine load, the same number of supernet train steps fed:
   - `step only`: one minibatch already a tensor, reused (no input cost at all);
   - `arrays`: shuffled NumPy minibatches, as `search(x, y)` feeds them;
   - `tf.data`: `from_tensor_slices -> shuffle -> batch -> prefetch`, its
     tensors passed straight to the step;
   - `tf.data as NumPy`: the same dataset read through `as_numpy_iterator`, as
     `search(dataset)` reads a batched dataset;
   - `omega phase`: `ENASTuner._omega_phase` itself (arrays, and the controller
     sampling a child for every step).
   All but the last train the same pre-sampled children, so they differ only
   in how the minibatches arrive.

Prints images per second for each, their ratio to `step only` (the most any
input pipeline can reach), and the controller's sampling time per step.

    python benchmarks/enas_input_feeding.py              # about 4 minutes on 2 cores
    python benchmarks/enas_input_feeding.py --rounds 5 --steps 200
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_rlnas import data  # noqa: E402
from keras_rlnas.spaces import ENASMacro  # noqa: E402
from keras_rlnas.tuners import ENASTuner  # noqa: E402
from keras_rlnas.tuners.derivation import minibatches  # noqa: E402


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--filters", type=int, default=24)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--images", type=int, default=12000, help="training slice, as the main job's --limit")
    parser.add_argument("--steps", type=int, default=120, help="train steps per way and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    args = parse_arguments()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"TF threads intra {tf.config.threading.get_intra_op_parallelism_threads()} "
          f"inter {tf.config.threading.get_inter_op_parallelism_threads()} (0: one per core)", flush=True)
    (x, y), validation, _, info = data.load_arrays("fashion_mnist", validation_size=5000, limit=args.images)
    space = ENASMacro(info.input_shape, info.num_classes, num_layers=args.layers, filters=args.filters)
    directory = tempfile.mkdtemp(prefix="enas_input_feeding_")
    tuner = ENASTuner(space, seed=args.seed, directory=directory, overwrite=True, verbose=0, batch_size=args.batch,
                      controller_steps=20, controller_batch=10, derive_samples=50)

    # Two epochs: the first also traces every function the parts below call.
    tuner.search(x, y, validation_data=validation, epochs=2)
    epoch = tuner.history[-1]
    phases = ", ".join(
        f"{name} {epoch[f'{key}_seconds']:.1f} s ({epoch[f'{key}_seconds'] / epoch['seconds']:.0%})"
        for key, name in (("omega", "omega phase"), ("controller", "controller updates"), ("derivation", "derivation"))
    )
    print(f"the second ENAS epoch: {epoch['seconds']:.1f} s: {phases}", flush=True)

    # 2. The omega phase's feeding.
    supernet, steps, batch = tuner.supernet, args.steps, args.batch
    if steps * batch > len(x):
        raise ValueError(f"--steps {steps} of --batch {batch} need {steps * batch} images; --images is {len(x)}.")
    rng = np.random.default_rng(args.seed)
    children = [tuner.sample_architecture()[0] for _ in range(steps)]
    slice_x, slice_y = x[: steps * batch], y[: steps * batch]
    fixed_images, fixed_labels = tf.constant(slice_x[:batch]), tf.constant(slice_y[:batch])
    dataset = (tf.data.Dataset.from_tensor_slices((slice_x, slice_y)).shuffle(len(slice_x), seed=args.seed)
               .batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE))

    def fed(batches):
        def run():
            result = None
            for (images, labels), child in zip(batches(), children):
                result = supernet.train_step(images, labels, child)
            float(result["loss"])  # waits for the last step
        return run

    ways = {
        "step only": fed(lambda: ((fixed_images, fixed_labels) for _ in range(steps))),
        "arrays": fed(lambda: minibatches((slice_x, slice_y), batch, rng)),
        "tf.data": fed(lambda: iter(dataset)),
        "tf.data as NumPy": fed(lambda: dataset.as_numpy_iterator()),
        "omega phase": lambda: tuner._omega_phase((slice_x, slice_y), batch),
    }
    for run in ways.values():  # warm-up: the dataset's first pass, any retrace
        run()
    times = {name: [] for name in ways}
    sampling = []
    for _ in range(args.rounds):
        for name, run in ways.items():
            times[name].append(timed(run))
        sampling.append(timed(lambda: [tuner.sample_architecture() for _ in range(steps)]))
    reference = statistics.median(times["step only"])
    print(f"\n{steps} train steps of {batch} images, median of {args.rounds} interleaved rounds:")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<18} {steps * batch / median:7.0f} images/s  {median / steps * 1e3:6.1f} ms/step  "
              f"ratio to step only {reference / median:.3f}  (rounds: {', '.join(f'{v:.2f}' for v in values)} s)")
    print(f"  controller sampling alone: {statistics.median(sampling) / steps * 1e3:.2f} ms per child "
          f"({statistics.median(sampling) / reference:.1%} of a step)")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
