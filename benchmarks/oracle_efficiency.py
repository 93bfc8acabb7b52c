"""ControllerOracle against Keras Tuner's RandomSearch and BayesianOptimization oracles.

Three synthetic objectives shaped like NAS: categorical per-layer decisions
whose effects interact between neighbouring layers, skip connections, and a
mixed hyperparameter space. Each has a known optimum (computed exactly by
dynamic programming over the chain of layers), scores are normalised so the
optimum is 1.0 and the worst architecture 0.0, and every evaluation adds
Gaussian noise. Printed per oracle and budget: the true score of the trial with
the best observed score (best-so-far) and the mean true score of the last 25
trials (where the oracle is sampling now), each a mean over seeds.

    python benchmarks/oracle_efficiency.py --seeds 10 --trials 300
"""

import argparse
import itertools
import json
import os
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras_tuner  # noqa: E402

from keras_rlnas import ControllerOracle  # noqa: E402
from keras_rlnas.spaces.structured import position_name, skip_inputs  # noqa: E402

NOISE = 0.02
CHECKPOINTS = (25, 50, 100, 300)


def _viterbi(unary, pairwise, best=max):
    """Best total of sum_i unary[i][a_i] + sum_i pairwise[i][a_i, a_i+1] over a chain."""
    value = np.array(unary[0], float)
    for i in range(1, len(unary)):
        total = value[:, None] + pairwise[i - 1]
        value = (total.max(0) if best is max else total.min(0)) + unary[i]
    return value.max() if best is max else value.min()


class ChainObjective:
    """Per-layer op and width choices; neighbouring layers interact (ops that suit each other)."""

    name = "chain"

    def __init__(self, seed, layers=8, ops=6, widths=4):
        rng = np.random.default_rng(seed)
        self.layers, self.ops, self.widths = layers, ops, widths
        n = ops * widths
        self.unary = [rng.normal(0, 1, n) for _ in range(layers)]
        self.pairwise = [rng.normal(0, 1.5, (n, n)) for _ in range(layers - 1)]
        self.high = _viterbi(self.unary, self.pairwise, max)
        self.low = _viterbi(self.unary, self.pairwise, min)

    def declare(self, hp):
        for i in range(self.layers):
            hp.Choice(position_name("layers", i, "op"), list(range(self.ops)))
            hp.Choice(position_name("layers", i, "width"), [16, 32, 64, 128][: self.widths])

    def _codes(self, values):
        widths = [16, 32, 64, 128]
        return [
            values[position_name("layers", i, "op")] * self.widths + widths.index(values[position_name("layers", i, "width")])
            for i in range(self.layers)
        ]

    def raw(self, values):
        codes = self._codes(values)
        total = sum(self.unary[i][c] for i, c in enumerate(codes))
        total += sum(self.pairwise[i][codes[i], codes[i + 1]] for i in range(self.layers - 1))
        return total

    def __call__(self, values):
        return (self.raw(values) - self.low) / (self.high - self.low)


class SkipObjective(ChainObjective):
    """A chain of ops plus skip connections, some helpful and some harmful (Zoph & Le's space)."""

    name = "skips"

    def __init__(self, seed, layers=6, ops=4):
        super().__init__(seed, layers=layers, ops=ops, widths=1)
        rng = np.random.default_rng(seed + 1000)
        self.skip_gain = {(i, j): rng.normal(-0.3, 1.0) for i in range(layers) for j in range(i)}
        self.high += sum(max(g, 0) for g in self.skip_gain.values())
        self.low += sum(min(g, 0) for g in self.skip_gain.values())

    def declare(self, hp):
        for i in range(self.layers):
            hp.Choice(position_name("layers", i, "op"), list(range(self.ops)))
            skip_inputs(hp, "layers", i)

    def _codes(self, values):
        return [values[position_name("layers", i, "op")] for i in range(self.layers)]

    def raw(self, values):
        total = super().raw(values)
        return total + sum(g for (i, j), g in self.skip_gain.items() if values[position_name("layers", i, f"skip[{j}]")])


class MixedObjective:
    """Training hyperparameters: log learning rate, stepped width, activation, depth (interacting)."""

    name = "mixed"

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.best_log_lr = {a: rng.uniform(-4, -1.5) for a in ("relu", "tanh", "gelu")}
        self.act_gain = {a: rng.uniform(0, 0.3) for a in ("relu", "tanh", "gelu")}
        self.best_units = {d: int(rng.choice(range(32, 513, 32))) for d in (1, 2, 3, 4)}
        self.depth_gain = {d: rng.uniform(0, 0.3) for d in (1, 2, 3, 4)}
        grid = itertools.product(np.linspace(-4, -1, 601), range(32, 513, 32), ("relu", "tanh", "gelu"), (1, 2, 3, 4))
        scores = [self._score(lr, u, a, d) for lr, u, a, d in grid]
        self.high, self.low = max(scores), min(scores)

    def declare(self, hp):
        hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
        hp.Int("units", 32, 512, step=32)
        hp.Choice("activation", ["relu", "tanh", "gelu"])
        hp.Int("depth", 1, 4)

    def _score(self, log_lr, units, act, depth):
        lr_term = np.exp(-((log_lr - self.best_log_lr[act]) ** 2) / 0.5)
        unit_term = np.exp(-(((units - self.best_units[depth]) / 160.0) ** 2))
        return lr_term + 0.6 * unit_term + self.act_gain[act] + self.depth_gain[depth]

    def __call__(self, values):
        raw = self._score(np.log10(values["learning_rate"]), values["units"], values["activation"], values["depth"])
        return (raw - self.low) / (self.high - self.low)


OBJECTIVES = (ChainObjective, SkipObjective, MixedObjective)


def make_oracle(kind, seed, trials, rl_options):
    common = dict(objective=keras_tuner.Objective("score", "max"), max_trials=trials, seed=seed)
    if kind == "rl":
        return ControllerOracle(**common, **rl_options)
    if kind == "random":
        return keras_tuner.oracles.RandomSearchOracle(**common)
    if kind == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(**common, num_initial_points=10)
    raise ValueError(kind)


def run(kind, objective, seed, trials, rl_options, workdir):
    oracle = make_oracle(kind, seed, trials, rl_options)
    oracle._set_project_dir(workdir, f"{kind}_{objective.name}_{seed}")
    oracle.verbose = 0
    hp = keras_tuner.HyperParameters()
    objective.declare(hp)
    oracle.update_space(hp)
    rng = np.random.default_rng(seed + 7)
    true_scores, observed = [], []
    for _ in range(trials):
        trial = oracle.create_trial("bench")
        if trial.status != "RUNNING":
            break
        score = objective(trial.hyperparameters.values)
        noisy = score + rng.normal(0, NOISE)
        oracle.update_trial(trial.trial_id, {"score": noisy})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        true_scores.append(score)
        observed.append(noisy)
    return np.array(true_scores), np.array(observed)


def summarize(true_scores, observed, budget):
    budget = min(budget, len(true_scores))
    best = int(np.argmax(observed[:budget]))
    return true_scores[best], float(np.mean(true_scores[max(0, budget - 25) : budget]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--oracles", default="rl,random,bayesian")
    parser.add_argument("--bayesian-trials", type=int, default=100, help="BayesianOptimization's cost grows with n^3: cap its budget.")
    parser.add_argument("--objectives", default=",".join(o.name for o in OBJECTIVES))
    parser.add_argument("--rl-options", default="{}", help="JSON of ControllerOracle keyword arguments.")
    args = parser.parse_args(argv)
    rl_options = json.loads(args.rl_options)
    checkpoints = [c for c in CHECKPOINTS if c <= args.trials]
    print(f"{'objective':<8} {'oracle':<9} " + " ".join(f"best@{c:<4} mean@{c:<4}" for c in checkpoints) + "  s/trial")
    with tempfile.TemporaryDirectory() as workdir:
        for objective_cls in OBJECTIVES:
            if objective_cls.name not in args.objectives.split(","):
                continue
            for kind in args.oracles.split(","):
                trials = min(args.trials, args.bayesian_trials) if kind == "bayesian" else args.trials
                rows, start = [], time.perf_counter()
                for seed in range(args.seeds):
                    objective = objective_cls(seed)
                    true_scores, observed = run(kind, objective, seed, trials, rl_options, workdir)
                    rows.append([summarize(true_scores, observed, c) if c <= len(true_scores) else (np.nan, np.nan) for c in checkpoints])
                elapsed = (time.perf_counter() - start) / (args.seeds * trials)
                table = np.array(rows)  # seeds x checkpoints x 2
                cells = " ".join(f"{np.nanmean(table[:, i, 0]):>9.3f} {np.nanmean(table[:, i, 1]):>9.3f}" if not np.isnan(table[:, i, 0]).all() else f"{'-':>9} {'-':>9}" for i in range(len(checkpoints)))
                print(f"{objective_cls.name:<8} {kind:<9} {cells}  {elapsed:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
