"""The retraining and the saved runs of `enas_vs_random.py`: pooled over search seeds, retrained more.

`test_accuracy` is the one recipe every child of a comparison is retrained
with. `pool` and `retrain_more` read runs saved with `--json` (see
`enas_vs_random.py`'s docstring); `best_of_n.py` reads their retrainings.
"""

import argparse
import json
import os
import time

import keras
import numpy as np
from beyond_size import parameter_count, print_beyond_size
from rank_statistics import bootstrap_indices, bootstrap_taus, interval, kendall_tau_b
from ranking_children import traits

import keras_rlnas
from keras_rlnas.retrain import retrain

# Label of each search by its ENASTuner sampler.
SEARCHERS = {"controller": "ENAS (controller)", "uniform": "weight-sharing random search", "size": "size rule"}
#: The searches a run makes unless `--searchers` says otherwise (and every run's before `--searchers`).
ENAS_SEARCHERS = ["controller", "uniform"]
#: Children the size rule draws unless `--largest-of` says otherwise.
SIZE_RULE_DRAWS = 100


def make_space(args, info):
    if args.space == "macro":
        return keras_rlnas.ENASMacro(info.input_shape, info.num_classes, num_layers=args.layers, filters=args.filters)
    return keras_rlnas.ENASMicro(info.input_shape, info.num_classes, num_cells=args.layers, filters=args.filters)


def test_accuracy(space, values, train, test, args, seed):
    keras.utils.set_random_seed(seed)
    model = retrain(space, values, *train, epochs=args.retrain_epochs, batch_size=args.batch, seed=seed)
    accuracy = float(model.evaluate(*test, batch_size=256, verbose=0)[1])
    keras.backend.clear_session()
    return accuracy


def margin_figures(rows, random_scores, rng, resamples):
    """Each searcher's margin over the random children's mean, with a 90 % bootstrap interval."""
    mean, sd = float(np.mean(random_scores)), float(np.std(random_scores, ddof=1))
    figures = {}
    for label, scores in rows.items():
        scores = np.asarray(scores)
        draws = [
            rng.choice(scores, len(scores)).mean() - rng.choice(random_scores, len(random_scores)).mean()
            for _ in range(resamples)
        ]
        low, high = np.percentile(draws, [5, 95])
        margin = float(scores.mean() - mean)
        figures[label] = dict(margin=margin, interval=[float(low), float(high)], margin_in_sd=margin / sd if sd else None)
        print(
            f"{label} - random mean: {margin:+.4f} (90% bootstrap [{low:+.4f}, {high:+.4f}]), "
            f"{margin / sd if sd else float('nan'):+.2f} random-child sd"
        )
    return figures


#: Arguments that name a run or what to do with saved runs, not how children are searched and retrained.
RUN_SPECIFIC = ("seed", "json", "pool", "random_from", "retrain_more", "retrain_seeds", "retrained_from")
#: Arguments of how a search ends: the random children do not depend on them.
SEARCH_ONLY = ("fine_tune_steps", "finalist_epochs", "uniform_finalists", "controller_options", "omega_sampler",
               "searchers", "largest_of")


def settings_of(arguments):
    """A run's settings apart from its seed and file names (older runs had no final choice)."""
    older = {"fine_tune_steps": 0, "finalist_epochs": 0, "uniform_finalists": 0, "controller_options": None,
             "omega_sampler": None, "searchers": ENAS_SEARCHERS, "largest_of": None}
    return {**older, **{k: v for k, v in arguments.items() if k not in RUN_SPECIFIC}}


def saved_random(args):
    """The random children's encodings and scores of the saved run `--random-from`, checked against this run."""
    run = json.load(open(args.random_from))
    ours = settings_of(vars(args))
    if run["arguments"]["seed"] != args.seed or any(
        settings_of(run["arguments"]).get(k) != ours[k] for k in ours if k not in SEARCH_ONLY
    ):
        raise SystemExit(f"--random-from: {args.random_from} has other settings: {run['arguments']}")
    return run.get("random_encodings"), run["random"]


def pool(paths, resamples):
    """Pools saved runs of several search seeds (see `enas_vs_random.py`'s docstring)."""
    runs = [json.load(open(path)) for path in paths]
    settings = [settings_of(run["arguments"]) for run in runs]
    if any(other != settings[0] for other in settings[1:]):
        raise SystemExit(f"--pool: the runs differ in more than --seed: {settings}")
    seeds = [run["arguments"]["seed"] for run in runs]
    print(f"pooled runs: search seeds {seeds}, settings {settings[0]}")
    derived = {label: [float(np.mean(run["rows"][label]["test"])) for run in runs] for label in runs[0]["rows"]}
    random_scores = np.array([score for run in runs for score in run["random"]])
    for label, scores in derived.items():
        shared = [run["rows"][label]["shared"] for run in runs]
        shown = f"; shared-weight scores {', '.join(f'{s:.4f}' for s in shared)}" if None not in shared else ""
        print(f"{label:<32} {np.mean(scores):.4f} +- {np.std(scores, ddof=1):.4f} over {len(scores)} search seeds "
              f"({', '.join(f'{s:.4f}' for s in scores)}{shown})")
    print(f"{'uniformly random children':<32} {random_scores.mean():.4f} +- {random_scores.std(ddof=1):.4f} "
          f"(n={len(random_scores)}, {random_scores.min():.4f}-{random_scores.max():.4f})")
    compare_searchers(derived, random_scores, resamples)


def compare_searchers(derived, random_scores, resamples):
    """Margins over the random children and, for two searchers, their difference seed by seed."""
    figures = margin_figures(derived, random_scores, np.random.default_rng(0), resamples)
    labels = list(derived)
    if len(labels) == 2:
        difference = np.subtract(derived[labels[0]], derived[labels[1]])
        print(f"{labels[0]} - {labels[1]}, seed by seed: {', '.join(f'{d:+.4f}' for d in difference)} "
              f"(mean {difference.mean():+.4f})")
    return figures


def random_encodings_of(run, space):
    """A saved run's random children, drawn again as `main` draws them (older runs did not save them)."""
    rng = np.random.default_rng(run["arguments"]["seed"] + 1)
    drawn = [space.random_encoding(int(rng.integers(2**31))).tolist() for _ in range(run["arguments"]["random"])]
    if run.get("random_encodings") not in (None, drawn):
        raise SystemExit(f"--retrain-more: the saved random children of seed {run['arguments']['seed']} are not the ones drawn again")
    return drawn


def earlier_retrainings(path, settings):
    """`{(search seed, child name): test accuracies}` of a saved `--retrain-more` run with `settings`.

    Runs that differ only in how the searches end share their random children
    (`--random-from`): then only those are reused.
    """
    if path is None:
        return {}
    saved = json.load(open(path))
    saved_settings = settings_of(saved["settings"])
    same_children = {k: v for k, v in saved_settings.items() if k not in SEARCH_ONLY} == {
        k: v for k, v in settings.items() if k not in SEARCH_ONLY}
    if not same_children:
        raise SystemExit(f"--retrained-from: {path} retrained runs of other settings: {saved['settings']}")
    same_searches = saved_settings == settings
    return {
        (child["search_seed"], child["name"]): child["test"] for child in saved["children"]
        if same_searches or child["name"].startswith("random child")
    }


def what_scores_go_with(space_of, children, resamples):
    """Prints and returns, per trait, Kendall's tau-b of the random children's
    mean scores with their trait counts (90 % bootstrap over children) and
    each searcher's mean count against the random children's.

    Args:
        space_of: `{search seed: space}`.
        children: `(search seed, name, encoding, scores)` per child.
        resamples: bootstrap resamples.
    """
    table = [(name, traits(space_of[seed], encoding), float(np.mean(scores))) for seed, name, encoding, scores in children]
    random = [(counts, score) for name, counts, score in table if name.startswith("random")]
    means = np.array([score for _, score in random])
    indices = bootstrap_indices(len(random), resamples, np.random.default_rng(0))
    labels = sorted({name for name, _, _ in table if not name.startswith("random")})
    print("\nwhat the random children's mean scores go with: tau-b (90% bootstrap); mean count, random / "
          + " / ".join(labels))
    figures = {}
    for trait in random[0][0]:
        counts = np.array([c[trait] for c, _ in random], float)
        tau, (low, high) = kendall_tau_b(counts, means), interval(bootstrap_taus(counts, means, indices))
        searched = {label: float(np.mean([c[trait] for name, c, _ in table if name == label])) for label in labels}
        figures[trait] = dict(tau=tau, interval=[low, high], random_mean=float(counts.mean()), searched=searched)
        print(f"  {trait:<12} tau-b {tau:+.3f} [{low:+.3f}, {high:+.3f}]; {counts.mean():.2f} / "
              + " / ".join(f"{value:.2f}" for value in searched.values()))
    return figures


def retrain_more(paths, seeds_per_child, resamples, json_path, retrained_from=None):
    """Retrains the children of saved runs up to `seeds_per_child` seeds each and pools them (see `enas_vs_random.py`'s docstring)."""
    runs = [json.load(open(path)) for path in paths]
    settings = [settings_of(run["arguments"]) for run in runs]
    if any(other != settings[0] for other in settings[1:]):
        raise SystemExit(f"--retrain-more: the runs differ in more than --seed: {settings}")
    earlier = earlier_retrainings(retrained_from, settings[0])
    began, load_at_start = time.time(), os.getloadavg()
    first = argparse.Namespace(**runs[0]["arguments"])
    (x, y), _, (x_test, y_test), info = keras_rlnas.datasets.load_arrays("fashion_mnist", limit=first.limit)
    test = (x_test[: first.test], y_test[: first.test])
    children, space_of = [], {}  # (search seed, name, encoding, test accuracies in seed order)
    for run in runs:
        args = argparse.Namespace(**run["arguments"])
        space = space_of[args.seed] = make_space(args, info)
        named = [(label, row["values"], list(row["test"])) for label, row in run["rows"].items()]
        named += [
            (f"random child {index}", space.decode(np.asarray(encoding)), [run["random"][index]])
            for index, encoding in enumerate(random_encodings_of(run, space))
        ]
        for name, values, scores in named:
            reused = earlier.get((args.seed, name), [])
            if reused[: len(scores)] != scores[: len(reused)]:
                raise SystemExit(f"--retrained-from: seed {args.seed}, {name}: {reused} do not extend the saved {scores}")
            scores = list(max(scores, reused, key=len))
            for seed in range(args.seed + 1 + len(scores), args.seed + 1 + seeds_per_child):
                scores.append(test_accuracy(space, values, (x, y), test, args, seed))
            print(f"search seed {args.seed}, {name}: {', '.join(f'{s:.4f}' for s in scores)}", flush=True)
            children.append((args.seed, name, space.encode(values), scores[:seeds_per_child]))
    table = np.array([scores for *_, scores in children])
    noise = float(np.sqrt(np.mean(table.var(axis=1, ddof=1))))
    random_means = np.array([np.mean(s) for _, name, _, s in children if name.startswith("random")])
    between = float(random_means.var(ddof=1))
    architecture_sd = float(np.sqrt(max(between - noise**2 / seeds_per_child, 0.0)))
    print(f"\nretraining noise (sd between seeds of one child, pooled over {len(children)} children): {noise:.4f}")
    print(f"random children, mean of {seeds_per_child} seeds each: {random_means.mean():.4f} +- {random_means.std(ddof=1):.4f} "
          f"(n={len(random_means)}); their architectures alone: sd {architecture_sd:.4f}")
    labels = list(runs[0]["rows"])
    derived = {label: [float(np.mean(s)) for _, name, _, s in children if name == label] for label in labels}
    for label, scores in derived.items():
        print(f"{label:<32} {np.mean(scores):.4f} +- {np.std(scores, ddof=1):.4f} over {len(scores)} search seeds "
              f"({', '.join(f'{s:.4f}' for s in scores)})")
    figures = compare_searchers(derived, random_means, resamples)
    trait_figures = what_scores_go_with(space_of, children, resamples)
    parameters = [parameter_count(space_of[seed], encoding) for seed, _, encoding, _ in children]
    sized = [(name, n, float(np.mean(scores))) for (_, name, _, scores), n in zip(children, parameters)]
    size_figures = print_beyond_size(
        [n for name, n, _ in sized if name.startswith("random")], random_means,
        {label: ([n for name, n, _ in sized if name == label], derived[label]) for label in labels},
    )
    print(f"wall time {time.time() - began:.0f} s; load average {load_at_start[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    if json_path:
        with open(json_path, "w") as file:
            json.dump(
                dict(runs=paths, settings=settings[0], retrain_seeds=seeds_per_child,
                     children=[dict(search_seed=seed, name=name, test=scores, parameters=n)
                               for (seed, name, _, scores), n in zip(children, parameters)],
                     retraining_noise=noise, architecture_sd=architecture_sd, figures=figures, traits=trait_figures,
                     beyond_size=size_figures),
                file, indent=1, default=str,
            )
