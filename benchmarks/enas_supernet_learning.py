"""How fast do the shared weights learn, against a child trained alone?

Trains an ENAS macro supernet (default 6 layers x 16 filters, 12,000
Fashion-MNIST training images) with a uniformly sampled child per minibatch,
as `ENASTuner(sampler="uniform")` does, and after every epoch scores
`--children` fixed uniformly drawn children on 2,000 validation images with
the shared weights (BN recalibrated on 512 training images per child). For
reference, one of those children is also trained alone with the same
optimizer for `--standalone-epochs` epochs at minibatch 128.

    python benchmarks/enas_supernet_learning.py                    # omega minibatch 32 (the tuner's)
    python benchmarks/enas_supernet_learning.py --batch-size 128   # the reference code's
    python benchmarks/enas_supernet_learning.py --separate-op-weights   # every op its own weights
    python benchmarks/enas_supernet_learning.py --fair             # FairNAS's strict fairness (6x the compute per image)
    python benchmarks/enas_supernet_learning.py --space micro [--stacked-sources]   # 1 cell per stage x 12 filters
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_rlnas  # noqa: E402
from keras_rlnas.supernet import build_supernet  # noqa: E402


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", choices=("macro", "micro"), default="macro")
    parser.add_argument("--layers", type=int, default=None, help="macro layers (6) / micro cells per stage (1)")
    parser.add_argument("--filters", type=int, default=None, help="macro 16 / micro 12")
    parser.add_argument("--limit", type=int, default=12000, help="training images")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32, help="omega-phase minibatch")
    parser.add_argument("--children", type=int, default=8, help="uniform children scored after every epoch")
    parser.add_argument("--standalone-epochs", type=int, default=2, help="0: no standalone reference")
    parser.add_argument(
        "--separate-op-weights",
        action="store_true",
        help="macro: every op its own weights (the reference supernet), not entangled ones",
    )
    parser.add_argument(
        "--stacked-sources",
        action="store_true",
        help="micro: one weight set per position an op reads (the reference supernet), not one per slot",
    )
    parser.add_argument(
        "--fair", action="store_true",
        help="FairNAS's strict fairness: each minibatch trains children that pick every op once, gradients summed",
    )
    parser.add_argument("--learning-rate", type=float, default=0.05, help="peak of the cosine warm restarts")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="Nesterov SGD (the papers') or Adam")
    parser.add_argument("--restart-period", type=int, default=10, help="epochs of the first cosine cycle")
    parser.add_argument("--l2", type=float, default=None, help="L2 factor (default: the space's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    macro = args.space == "macro"
    args.layers = args.layers or (6 if macro else 1)
    args.filters = args.filters or (16 if macro else 12)
    return args


def main():
    args = parse_arguments()
    began, load_at_start = time.time(), os.getloadavg()
    (x, y), (x_val, y_val), _, info = keras_rlnas.datasets.load_arrays("fashion_mnist", limit=args.limit)
    x_val, y_val = x_val[:2000], y_val[:2000]
    if args.space == "macro":
        space = keras_rlnas.ENASMacro(info.input_shape, info.num_classes, num_layers=args.layers, filters=args.filters)
        options = {"entangled": not args.separate_op_weights}
        layout = "separate" if args.separate_op_weights else "entangled"
    else:
        space = keras_rlnas.ENASMicro(info.input_shape, info.num_classes, num_cells=args.layers, filters=args.filters)
        options = {"share_sources": not args.stacked_sources}
        layout = "per-position" if args.stacked_sources else "per-slot"
    rng = np.random.default_rng(args.seed)
    children = [space.random_encoding(int(rng.integers(2**31))) for _ in range(args.children)]
    calibration = x[rng.choice(len(x), 512, replace=False)]
    optimizer = keras.optimizers.Adam(args.learning_rate) if args.optimizer == "adam" else None
    supernet = build_supernet(
        space,
        learning_rate=args.learning_rate,
        min_learning_rate=args.learning_rate / 100,
        restart_period=args.restart_period,
        l2=args.l2,
        optimizer=optimizer,
        **options,
    )
    sampling = f"{len(space.OPS)} children covering every op (gradients summed)" if args.fair else "one uniform child"
    print(f"{args.space} {args.layers} x {args.filters}, {layout} op weights, {sampling} per omega minibatch of {args.batch_size}, {args.optimizer} learning rate {args.learning_rate} "
          f"(cosine over {args.restart_period} epochs), L2 {supernet.l2}, {len(x)} images, {args.children} uniform children scored per epoch")
    for epoch in range(args.epochs):
        start = time.time()
        supernet.set_epoch(epoch)
        accuracies = []
        order = rng.permutation(len(x))
        for first in range(0, len(x) - args.batch_size + 1, args.batch_size):
            batch = order[first : first + args.batch_size]
            if args.fair:
                result = supernet.fair_train_step(x[batch], y[batch], space.fair_encodings(int(rng.integers(2**31))))
            else:
                result = supernet.train_step(x[batch], y[batch], space.random_encoding(int(rng.integers(2**31))))
            accuracies.append(float(result["accuracy"]))
        seconds = time.time() - start
        scores = [supernet.evaluate(x_val, y_val, child, calibration_images=calibration) for child in children]
        print(f"epoch {epoch + 1:>2}: train acc {np.mean(accuracies):.3f}  children on shared weights "
              f"{np.mean(scores):.3f} +- {np.std(scores):.3f} (min {np.min(scores):.3f}, max {np.max(scores):.3f})  "
              f"omega {seconds:.0f} s", flush=True)
    if args.standalone_epochs:
        keras.utils.set_random_seed(args.seed)
        model = space.with_options(steps_per_epoch=len(x) // 128).build_child(children[0])
        history = model.fit(x, y, batch_size=128, epochs=args.standalone_epochs, validation_data=(x_val, y_val), verbose=0)
        shared = supernet.evaluate(x_val, y_val, children[0], calibration_images=calibration)
        print(f"child 0 alone after {args.standalone_epochs} epochs: train acc {history.history['accuracy'][-1]:.3f}, "
              f"validation {history.history['val_accuracy'][-1]:.3f}; on the shared weights {shared:.3f}")
    print(f"wall time {time.time() - began:.0f} s; load average {load_at_start[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
