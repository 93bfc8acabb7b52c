"""Zero-cost proxies: do scores of untrained children rank them as standalone training does?

Scores each child of a saved `enas_ranking.py --json` run at its random
initialisation, on one minibatch of 128 training images, averaged over
`--inits` initialisations, and compares them with that run's standalone
scores (Kendall tau-b with a 90 % bootstrap interval over children, overall
and beyond the conv count, as `enas_ranking.py` reports the shared weights):

- `naswot`: log-determinant of the kernel of the minibatch's binary activation
  codes after every op (Mellor et al., 2021, "NAS without training");
- `snip`: sum over weights of |weight x gradient of the loss| (Lee et al., 2019;
  as a NAS proxy, Abdelfattah et al., 2021);
- `grad_norm`: the norm of the loss's gradient;
- `params`: the child's parameter count.

Commands
--------
    python benchmarks/zero_cost_ranking.py benchmarks/results/enas_ranking_macro_10epochs.json

A few minutes on 2 cores (24 children x 3 initialisations); the macro space only.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rank_statistics  # noqa: E402

import keras_rlnas  # noqa: E402

#: Layers whose outputs feed the next op's ReLU: their signs are NASWOT's activation codes.
CODE_LAYERS = ("ConvBN", "MacroConv", "MacroPool", "BatchNorm")


def naswot(child, images):
    """log |K| of the Hamming-similarity kernel of the images' binary activation codes."""
    outputs = [layer.output for layer in child.layers if type(layer).__name__ in CODE_LAYERS]
    activations = keras.Model(child.inputs[0], outputs)(images, training=True)
    codes = np.concatenate([np.reshape(a, (len(images), -1)) > 0 for a in activations], axis=1)
    codes = codes.astype("float64")
    return float(np.linalg.slogdet(codes @ codes.T + (1 - codes) @ (1 - codes).T)[1])


def gradient_scores(child, images, labels):
    """`(snip, grad_norm)` of the cross-entropy on one minibatch."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, child(images, training=True)))
    pairs = [(g, v) for g, v in zip(tape.gradient(loss, child.trainable_variables), child.trainable_variables)
             if g is not None]
    snip = sum(float(tf.reduce_sum(tf.abs(g * v))) for g, v in pairs)
    grad_norm = float(np.sqrt(sum(float(tf.reduce_sum(g * g)) for g, _ in pairs)))
    return snip, grad_norm


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a saved `enas_ranking.py --json` run (macro)")
    parser.add_argument("--inits", type=int, default=3, help="initialisations averaged per child")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(args.run) as file:
        run = json.load(file)
    settings, children = run["arguments"], run["children"]
    if settings["space"] != "macro":
        raise SystemExit(f"{args.run} ranks the {settings['space']} space; this benchmark scores macro children.")
    (x, y), _, _, info = keras_rlnas.datasets.load_arrays("fashion_mnist", limit=settings["limit"])
    space = keras_rlnas.ENASMacro(info.input_shape, info.num_classes, num_layers=settings["layers"],
                                  filters=settings["filters"])
    rng = np.random.default_rng(args.seed)
    scores = {"naswot": [], "snip": [], "grad_norm": []}
    for child_record in children:
        draws = []
        for init in range(args.inits):
            keras.utils.set_random_seed(args.seed + init)
            child = space.build_child(np.array(child_record["encoding"]), compile=False)
            picked = rng.choice(len(x), args.batch, replace=False)
            draws.append((naswot(child, x[picked]), *gradient_scores(child, x[picked], y[picked])))
        for key, value in zip(scores, np.mean(draws, axis=0)):
            scores[key].append(float(value))
    scores["params"] = [child["params"] for child in children]
    scores["recalibrated (shared weights)"] = [child["recalibrated"] for child in children]
    standalone = np.array([child["standalone"] for child in children], float)
    convs = np.array([child["convs"] for child in children])
    mean = standalone.mean(axis=1)
    indices = rank_statistics.bootstrap_indices(len(children), args.bootstrap, rng)
    ceiling = rank_statistics.kendall_tau_b(standalone[:, 0], standalone[:, 1])
    print(f"{len(children)} children of {args.run}; noise ceiling (standalone seed 1 vs 2) tau-b {ceiling:+.3f}")
    print(f"{'proxy':>30} {'tau-b vs mean standalone':>34} {'beyond the conv count':>34} {'tau with convs':>15}")
    for key, values in scores.items():
        centred, reference = rank_statistics.centred_within(values, convs), rank_statistics.centred_within(mean, convs)
        cells = []
        for a, b in ((values, mean), (centred, reference)):
            low, high = rank_statistics.interval(rank_statistics.bootstrap_taus(a, b, indices))
            cells.append(f"{rank_statistics.kendall_tau_b(a, b):+.3f} [{low:+.3f}, {high:+.3f}]")
        print(f"{key:>30} {cells[0]:>34} {cells[1]:>34} {rank_statistics.kendall_tau_b(values, convs):>+15.3f}")


if __name__ == "__main__":
    main()
