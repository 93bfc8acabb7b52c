"""ENAS ranking: do shared-weight scores order architectures as standalone training does?

The supernet is trained for a few ENAS epochs with uniformly sampled children
(the usual setting of ranking studies: no controller bias towards some
children). Then, for a sample of architectures drawn uniformly, two scores are
compared:

- shared: accuracy on the whole validation split with the supernet's weights,
  as the theta phase and the derivation see it (one score per architecture);
- standalone: the same child built alone, trained from scratch for a few
  epochs (one cosine cycle, `ENASTuner.retrain` without drop-path or
  auxiliary head), validation accuracy.

Prints both scores per architecture, Kendall's tau-b with a one-sided
permutation p-value, and Spearman's rho.

    python benchmarks/enas_ranking.py                        # macro, 6 layers x 16 filters
    python benchmarks/enas_ranking.py --space micro --archs 10
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras_rlnas  # noqa: E402


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", choices=("macro", "micro"), default="macro")
    parser.add_argument("--layers", type=int, default=6, help="macro layers / micro cells per stage")
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--limit", type=int, default=10000, help="training images")
    parser.add_argument("--validation", type=int, default=2000, help="validation images")
    parser.add_argument("--supernet-epochs", type=int, default=8)
    parser.add_argument("--archs", type=int, default=12, help="architectures compared")
    parser.add_argument("--standalone-epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def kendall_tau_b(a, b):
    """Kendall's tau-b of two score vectors (ties counted as in scipy.stats.kendalltau)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    upper = np.triu_indices(len(a), 1)
    da = np.sign(a[:, None] - a[None, :])[upper]
    db = np.sign(b[:, None] - b[None, :])[upper]
    denominator = np.sqrt(np.count_nonzero(da) * np.count_nonzero(db))
    return float(np.sum(da * db) / denominator) if denominator else float("nan")


def spearman_rho(a, b):
    """Spearman's rho (Pearson correlation of average ranks)."""

    def ranks(values):
        values = np.asarray(values, float)
        order = values.argsort()
        rank = np.empty(len(values))
        rank[order] = np.arange(len(values))
        for value in np.unique(values):
            rank[values == value] = rank[values == value].mean()
        return rank

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def permutation_p_value(a, b, statistic, rng, permutations=10000):
    """One-sided p-value of `statistic(a, b)` being this large when the pairing is random."""
    observed = statistic(a, b)
    draws = [statistic(a, rng.permutation(b)) for _ in range(permutations)]
    return (1 + sum(draw >= observed for draw in draws)) / (permutations + 1)


def shared_score(supernet, encoding, x, y, batch):
    correct = 0.0
    for start in range(0, len(x), batch):
        images, labels = x[start : start + batch], y[start : start + batch]
        correct += float(supernet.eval_step(images, labels, encoding)) * len(images)
    return correct / len(x)


def main():
    args = parse_arguments()
    (x, y), (x_val, y_val), _, info = keras_rlnas.datasets.load_arrays("fashion_mnist", limit=args.limit)
    x_val, y_val = x_val[: args.validation], y_val[: args.validation]
    if args.space == "macro":
        space = keras_rlnas.ENASMacro(info.input_shape, info.num_classes, num_layers=args.layers, filters=args.filters)
    else:
        space = keras_rlnas.ENASMicro(info.input_shape, info.num_classes, num_cells=args.layers, filters=args.filters)
    directory = tempfile.mkdtemp(prefix="enas_ranking_")
    tuner = keras_rlnas.ENASTuner(space, sampler="uniform", seed=args.seed, batch_size=args.batch, directory=directory, project_name="ranking", verbose=0)
    start = time.time()
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=args.supernet_epochs)
    print(f"supernet: {args.supernet_epochs} uniform ENAS epochs on {len(x)} images in {time.time() - start:.0f} s; "
          f"last training accuracy {tuner.history[-1]['train_accuracy']:.3f}")

    # Short standalone training is plain: no final-training drop-path or auxiliary head.
    plain = {"drop_path": 0.0, "auxiliary_weight": 0.0} if args.space == "micro" else {}
    rng = np.random.default_rng(args.seed + 1)
    shared, standalone = [], []
    print(f"{'arch':>4} {'params':>8} {'shared':>7} {'standalone':>10} {'seconds':>7}")
    for index in range(args.archs):
        encoding = space.random_encoding(int(rng.integers(2**31)))
        shared.append(shared_score(tuner.supernet, encoding, x_val, y_val, args.batch))
        start = time.time()
        child = tuner.retrain(space.decode(encoding), x, y, epochs=args.standalone_epochs, batch_size=args.batch, **plain)
        standalone.append(float(child.evaluate(x_val, y_val, batch_size=args.batch, verbose=0)[1]))
        print(f"{index:>4} {child.count_params():>8,} {shared[-1]:>7.4f} {standalone[-1]:>10.4f} {time.time() - start:>7.0f}", flush=True)

    tau, rho = kendall_tau_b(shared, standalone), spearman_rho(shared, standalone)
    p_tau = permutation_p_value(shared, standalone, kendall_tau_b, rng)
    print(f"\n{args.space}: {args.archs} architectures, supernet {args.supernet_epochs} epochs, standalone {args.standalone_epochs} epochs")
    print(f"Kendall tau-b {tau:.3f} (one-sided permutation p = {p_tau:.3f}), Spearman rho {rho:.3f}")
    print(f"shared-weight accuracy {np.mean(shared):.3f} +- {np.std(shared):.3f}; standalone {np.mean(standalone):.3f} +- {np.std(standalone):.3f}")


if __name__ == "__main__":
    main()
