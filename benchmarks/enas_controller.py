"""Does the ENAS controller follow the shared weights' signal at a user's budget?

Runs an ENAS search (macro by default: 6 layers x 16 filters; `--space micro`:
1 cell per stage x 12 filters; 12,000 Fashion-MNIST training images, 10 ENAS
epochs) with the tuner's default controller, or with the options given as
JSON, and then compares, on the same shared weights and the same validation
images:

- `--samples` architectures sampled from the trained controller, against
- as many architectures drawn uniformly from the space.

Each architecture is scored on `--score-images` validation images with BN
recalibration on 512 training images. Printed: the policy entropy per epoch,
both means, their difference with a 90 % bootstrap interval, and the wall
time. With `--standalone N` the derived architecture and N uniform ones are
also trained from scratch for `--standalone-epochs` epochs (the real proof).

    python benchmarks/enas_controller.py
    python benchmarks/enas_controller.py --controller-options '{"learning_rate": 0.001}'
    python benchmarks/enas_controller.py --preset            # the reference code's controller
    python benchmarks/enas_controller.py --space micro
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras_rlnas  # noqa: E402


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", choices=("macro", "micro"), default="macro")
    parser.add_argument("--layers", type=int, default=None, help="macro layers (6) / micro cells per stage (1)")
    parser.add_argument("--filters", type=int, default=None, help="macro 16 / micro 12")
    parser.add_argument("--limit", type=int, default=12000, help="training images")
    parser.add_argument("--epochs", type=int, default=10, help="ENAS epochs")
    parser.add_argument("--samples", type=int, default=40, help="architectures per sampler")
    parser.add_argument("--score-images", type=int, default=1024)
    parser.add_argument("--controller-options", type=json.loads, default={})
    parser.add_argument("--tuner-options", type=json.loads, default={})
    parser.add_argument("--preset", action="store_true", help="the ENAS reference code's controller settings")
    parser.add_argument("--standalone", type=int, default=0, help="uniform children trained from scratch")
    parser.add_argument("--standalone-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def bootstrap_interval(a, b, rng, level=0.90, resamples=5000):
    """Percentile interval of mean(a) - mean(b), resampling each group."""
    a, b = np.asarray(a), np.asarray(b)
    draws = [rng.choice(a, len(a)).mean() - rng.choice(b, len(b)).mean() for _ in range(resamples)]
    tail = (1.0 - level) / 2.0
    return float(np.quantile(draws, tail)), float(np.quantile(draws, 1.0 - tail))


def main():
    args = parse_arguments()
    began = time.time()
    load_at_start = os.getloadavg()
    (x, y), (x_val, y_val), _, info = keras_rlnas.datasets.load_arrays("fashion_mnist", limit=args.limit)
    if args.space == "macro":
        space = keras_rlnas.ENASMacro(
            info.input_shape, info.num_classes, num_layers=args.layers or 6, filters=args.filters or 16
        )
    else:
        space = keras_rlnas.ENASMicro(
            info.input_shape, info.num_classes, num_cells=args.layers or 1, filters=args.filters or 12
        )
    options = dict(args.tuner_options)
    if args.preset:
        options["controller_options"] = f"enas_{args.space}"
    if args.controller_options:
        options["controller_options"] = args.controller_options
    tuner = keras_rlnas.ENASTuner(
        space, seed=args.seed, directory=tempfile.mkdtemp(prefix="enas_controller_"),
        project_name="controller", verbose=0, **options,
    )
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=args.epochs)
    search_seconds = time.time() - began
    for record in tuner.history:
        print(f"epoch {record['epoch'] + 1:>2}: train acc {record['train_accuracy']:.3f}  "
              f"entropy {record.get('entropy', float('nan')):.3f}  derived {record['derived_accuracy']:.3f}  "
              f"({record['seconds']:.0f} s)")

    rng = np.random.default_rng(args.seed + 1)
    score_x, score_y = x_val[-args.score_images:], y_val[-args.score_images:]
    calibration = x[rng.choice(len(x), 512, replace=False)]
    supernet = tuner.supernet

    def score(encoding):
        return supernet.evaluate(score_x, score_y, encoding, calibration_images=calibration)

    controller = [score(tuner.sample_architecture()[0]) for _ in range(args.samples)]
    uniform = [score(space.random_encoding(int(rng.integers(2**31)))) for _ in range(args.samples)]
    low, high = bootstrap_interval(controller, uniform, rng)
    entropies = [record["entropy"] for record in tuner.history if "entropy" in record]
    print(f"\nsearch: {args.space} space, {args.epochs} ENAS epochs on {len(x)} images in {search_seconds:.0f} s")
    if entropies:
        print(f"policy entropy: {entropies[0]:.2f} (epoch 1) -> {entropies[-1]:.2f} nats (epoch {len(entropies)})")
    print(f"controller samples {np.mean(controller):.4f} +- {np.std(controller):.4f}, "
          f"uniform samples {np.mean(uniform):.4f} +- {np.std(uniform):.4f} "
          f"({args.samples} each, {len(score_x)} validation images, recalibrated BN)")
    print(f"difference {np.mean(controller) - np.mean(uniform):+.4f}, 90% bootstrap interval [{low:+.4f}, {high:+.4f}]")

    if args.standalone:
        best = tuner.get_best_hyperparameters(1)[0]
        children = [("derived", space.as_encoding(best))] + [
            (f"uniform {index}", space.random_encoding(int(rng.integers(2**31)))) for index in range(args.standalone)
        ]
        results = {}
        for name, encoding in children:
            model = tuner.retrain(space.decode(encoding), x, y, epochs=args.standalone_epochs)
            results[name] = float(model.evaluate(x_val, y_val, verbose=0)[1])
            print(f"standalone {name}: {results[name]:.4f}", flush=True)
        others = [value for name, value in results.items() if name != "derived"]
        print(f"derived {results['derived']:.4f} vs uniform {np.mean(others):.4f} +- {np.std(others):.4f}")
    print(f"wall time {time.time() - began:.0f} s; load average {load_at_start[0]:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
