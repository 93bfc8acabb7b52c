"""What a wider or strided ENAS child costs per retraining epoch: seconds and parameters against width.

At this size a child's retraining step is dominated by per-op overhead, not
arithmetic, so widening it costs less than its parameter count suggests; this
script measures how much less. It retrains one ENAS macro child (the
two-hour `peers.py` cell's by default) on shifted and mirrored Fashion-MNIST
images, as `peers.py --final-augment 2` does, for a few epochs of `--images`
images at each `WIDTH/STRIDE` given (`--retrain-filters` / `--enas-stem-strides`
of `peers.py`), skips the first epoch (graph building) and times the others.
The specs are measured round-robin `--repeats` times, so that a busy host
slows all of them alike; it prints per spec the parameters, the median and
fastest seconds per 55,000-image epoch, and both ratios to the first spec.

Commands
--------
    python benchmarks/retrain_width.py                                   # 24/2 32/2 48/2 64/2 24/1
    python benchmarks/retrain_width.py 24/2 48/2 --repeats 5
    python benchmarks/retrain_width.py --architecture CHILD.json 24/1 36/1

About 40 s per spec and repeat; run nothing timed beside it.
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import keras_rlnas  # noqa: E402
from keras_rlnas.retrain import retrain  # noqa: E402

#: The child of the two-hour strided-stem cell (`peers.py --enas-stem-strides 2`, seed 0): four 3 x 3 and two
#: 5 x 5 convolutions, 10 skips, 59,218 parameters at 24 filters.
DEFAULT_CHILD = {
    "layers[0].op": "conv3x3", "layers[1].op": "conv5x5", "layers[1].skip[0]": True,
    "layers[2].op": "conv3x3", "layers[2].skip[0]": True, "layers[2].skip[1]": False,
    "layers[3].op": "conv3x3", "layers[3].skip[0]": False, "layers[3].skip[1]": True, "layers[3].skip[2]": False,
    "layers[4].op": "conv5x5", "layers[4].skip[0]": True, "layers[4].skip[1]": False, "layers[4].skip[2]": False,
    "layers[4].skip[3]": True, "layers[5].op": "conv3x3", "layers[5].skip[0]": True, "layers[5].skip[1]": True,
    "layers[5].skip[2]": True, "layers[5].skip[3]": True, "layers[5].skip[4]": True,
}
FULL_EPOCH_IMAGES = 55_000


class EpochTimer(keras.callbacks.Callback):
    """Seconds of every training epoch."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.began)


def parse_spec(spec):
    """`"48/2"` -> `(48, 2)`: retraining width and stem stride."""
    try:
        width, stride = (int(part) for part in spec.split("/"))
    except ValueError:
        raise SystemExit(f"a spec is WIDTH/STRIDE, e.g. 48/2, got {spec!r}") from None
    if width < 1 or stride < 1:
        raise SystemExit(f"width and stride must be positive, got {spec!r}")
    return width, stride


def seconds_per_epoch(child, x, y, info, width, stride, epochs):
    """`(parameters, [seconds per full epoch, one per timed epoch])` of the child retrained at `width`/`stride`."""
    space = keras_rlnas.ENASMacro(info.input_shape, info.num_classes, num_layers=6, filters=24, stem_strides=stride)
    timer = EpochTimer()
    model = retrain(space, child, x, y, epochs=epochs, filters=width, pad=2, flip=True, callbacks=[timer])
    return model.count_params(), [s * FULL_EPOCH_IMAGES / len(x) for s in timer.seconds[1:]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("specs", nargs="*", default=["24/2", "32/2", "48/2", "64/2", "24/1"],
                        help="WIDTH/STRIDE pairs; ratios are against the first")
    parser.add_argument("--architecture", help="JSON of the child's {name: value} (default: DEFAULT_CHILD)")
    parser.add_argument("--images", type=int, default=12_800, help="training images per timed epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per measurement, the first untimed")
    parser.add_argument("--repeats", type=int, default=3, help="round-robin passes over the specs")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2 (the first is not timed), got {args.epochs}")
    specs = [parse_spec(spec) for spec in args.specs]
    child = DEFAULT_CHILD
    if args.architecture:
        with open(args.architecture) as file:
            child = json.load(file)
    (x, y), _, _, info = keras_rlnas.datasets.load_arrays("fashion_mnist")
    x, y = x[:args.images], y[:args.images]
    loads = [os.getloadavg()[0]]
    parameters, seconds = {}, {spec: [] for spec in specs}
    for _ in range(args.repeats):
        for spec in specs:
            parameters[spec], timed = seconds_per_epoch(child, x, y, info, *spec, args.epochs)
            seconds[spec] += timed
            loads.append(os.getloadavg()[0])
    base = specs[0]
    base_median = statistics.median(seconds[base])
    print(f"{'width/stride':>12} {'parameters':>10} {'x params':>8} {'s/epoch median':>14} {'fastest':>8} "
          f"{'x time':>6}  per-epoch seconds")
    for spec in specs:
        median = statistics.median(seconds[spec])
        print(f"{spec[0]:>9}/{spec[1]:<2} {parameters[spec]:>10,} {parameters[spec] / parameters[base]:>8.2f} "
              f"{median:>14.1f} {min(seconds[spec]):>8.1f} {median / base_median:>6.2f}  "
              f"{' '.join(f'{s:.0f}' for s in seconds[spec])}")
    print(f"load average (1 min) from {loads[0]:.2f} to {loads[-1]:.2f}, highest {max(loads):.2f}; "
          f"{args.images:,} images x {args.epochs - 1} timed epochs x {args.repeats} repeats per spec")


if __name__ == "__main__":
    main()
