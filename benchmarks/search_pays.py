"""Does the search pay at one budget? Searched children against uniformly random ones, from recorded cells.

Reads the cells `peers.py` recorded for one ENAS system, budget and final
minibatch (and the other options that name a cell's variant, as `peers.py`
takes them), and sets side by side, each retrained the same way and scored
once on the test set:

- the ENAS cells (`peers.py --system S --budget-minutes B --search-fraction F
  --seed N`), and the same searched with the main job's search settings
  (`--enas-options '{"derive_samples": 50}'`, as `scripts/demo.sh` sets
  them) where such cells are recorded;
- weight-sharing random search (the same with
  `--enas-options '{"sampler": "uniform"}'`);
- with `--main-job`, the main job's runs (`scripts/demo.sh`,
  `results/main_job_runs.jsonl`) whose final training took that minibatch:
  15-minute ENAS macro searches with a quarter searching, run by the CLI with
  its own search settings (a 3.5-minute search, 50 derivation samples);
- the size rule (`--largest-of N`: of N uniformly drawn children, the one
  with the most parameters, no search), where such cells are recorded;
- uniformly random children (`--random-child`), the control.

The search share defaults to the main job's 0.25, not `peers.py`'s 0.5.
The budget is wall-clock time, so a child trains for fewer epochs on a slower
CPU: `--cpu` keeps the cells (and main-job runs) of one CPU (`"AMD EPYC"`,
`"Intel Xeon"`, as `peers_results.cpu` names them); each group's CPUs are
printed either way. Without `--cpu`, where the cells ran on several CPUs,
each searcher is also set against the random children within each CPU, the
CPUs' differences combined (`welch_within_cpus`), so that a CPU's shift of
every score is neither spread nor difference.

Each searcher's margin over the random children is given with a Welch 90 %
interval, in units of the random children's sd (a search that pays leads
them by more than their spread, one sd), and with the one-sided Welch
p-value; then the searchers against each other (two-sided); last, what each
search finds beyond size (`beyond_size.py`: each searcher's residual from the
random children's test accuracy fitted on the log of their parameter count).
Nothing is run.

    python benchmarks/search_pays.py --budget-minutes 15 --final-batch-size 64 --main-job
    python benchmarks/search_pays.py --budget-minutes 120 --final-augment 2 --enas-stem-strides 2 --retrain-filters 64
"""

import argparse
import json

import numpy as np
from beyond_size import print_beyond_size
from main_job_runs import RESULTS as MAIN_JOB_RESULTS
from main_job_runs import read_runs
from peers_results import (
    ENAS_SYSTEMS,
    FINAL_BATCH_SIZE,
    RESULTS,
    cpu,
    cpu_label,
    mean_sd,
    read_results,
    shown_mean_sd,
    variant,
)
from scipy import stats

#: The ENASTuner options `scripts/demo.sh` gives its search beyond the defaults.
MAIN_JOB_ENAS_OPTIONS = {"derive_samples": 50}


def welch(a, b, level=0.90):
    """`(difference of means, low, high, p)` by Welch's t; p is one-sided, of H0: mean(a) <= mean(b)."""
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(level)
    p = stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue
    return float(np.mean(a) - np.mean(b)), float(interval.low), float(interval.high), float(p)


def welch_within_cpus(searched, control, level=0.90):
    """Searched minus random children within each CPU, combined: `(difference, low, high, p, per_cpu)`.

    The budget is wall-clock time, so a CPU sets how many epochs a child
    trains and shifts every score on it; pooling runs from two CPUs adds that
    shift to the spread and, where the CPUs' shares differ between the groups,
    to the difference. Here each CPU's Welch difference counts on its own and
    the CPUs' differences are averaged with inverse-variance weights (a fixed
    effect of the CPU); the interval is Student t with Welch-Satterthwaite's
    degrees of freedom over every group in every CPU, `p` one-sided as
    `welch`'s. Only CPUs with two or more runs in both groups count.

    Args:
        searched, control: `{cpu: [scores]}` of the searcher and of the
            random children.

    Returns:
        `None` where no CPU has two runs in both groups; else the combined
        difference, its interval, its p and `{cpu: (difference, n_searched,
        n_control)}`.
    """
    shared = [name for name in sorted(searched) if len(searched[name]) >= 2 and len(control.get(name, [])) >= 2]
    if not shared:
        return None
    differences, group_variances = [], []
    for name in shared:
        groups = (np.asarray(searched[name]), np.asarray(control[name]))
        differences.append(groups[0].mean() - groups[1].mean())
        group_variances.append([(g.var(ddof=1) / len(g), len(g)) for g in groups])
    variances = np.array([sum(v for v, _ in cpu_groups) for cpu_groups in group_variances])
    weights = (1 / variances) / np.sum(1 / variances)
    difference = float(np.dot(weights, differences))
    variance = float(np.sum(weights ** 2 * variances))
    degrees = variance ** 2 / sum((w ** 2 * v) ** 2 / (n - 1)
                                  for w, cpu_groups in zip(weights, group_variances) for v, n in cpu_groups)
    half_width = stats.t.ppf(0.5 + level / 2, degrees) * np.sqrt(variance)
    p = float(stats.t.sf(difference / np.sqrt(variance), degrees))
    per_cpu = {name: (float(d), len(searched[name]), len(control[name])) for name, d in zip(shared, differences)}
    return difference, difference - half_width, difference + half_width, p, per_cpu


def cells_by_searcher(records, args):
    """`{label: [records]}`: each searcher's cells and the random-child control's, seeds in order.

    The searchers: the ENAS cells, the same with the main job's search
    settings, weight-sharing random search and the size rule.

    Each searcher's cells are those `peers.py` names by the same variant
    (`peers_results.variant`) for these options.
    """
    searchers = {
        "ENAS (controller)": dict(random_child=False, enas_options=None, largest_of=None),
        "ENAS, main job's settings": dict(random_child=False, enas_options=json.dumps(MAIN_JOB_ENAS_OPTIONS),
                                          largest_of=None),
        "weight-sharing random search": dict(random_child=False, enas_options=json.dumps({"sampler": "uniform"}),
                                             largest_of=None),
        f"size rule (largest of {args.largest_of})": dict(random_child=False, enas_options=None,
                                                            largest_of=args.largest_of),
        "random children": dict(random_child=True, enas_options=None, largest_of=None),
    }
    chosen = {}
    for label, options in searchers.items():
        name = variant(argparse.Namespace(**{**vars(args), **options}))
        wanted = (args.system, args.budget_minutes, args.search_fraction, name)
        chosen[label] = sorted(
            (r for r in records
             if (r["system"], float(r["budget_minutes"]), r.get("search_fraction"), r.get("variant")) == wanted),
            key=lambda r: r["seed"],
        )
    return chosen


def one_per_seed(records):
    """`records` with one record per seed: a seed run on several CPUs counts once, at its runs' mean.

    One seed draws one random child (and starts one search), so its runs on two
    CPUs are two trainings of one child, not two children. The merged record
    keeps its runs under `"runs"`, and the geometric mean of their sizes.
    """
    by_seed = {}
    for record in records:
        by_seed.setdefault(record["seed"], []).append(record)
    merged = []
    for _, runs in sorted(by_seed.items()):
        if len(runs) == 1:
            merged.append(runs[0])
            continue
        size = float(np.exp(np.mean(np.log([r["parameters"] for r in runs]))))
        merged.append({**runs[0], "test_accuracy": float(np.mean([r["test_accuracy"] for r in runs])),
                       "parameters": round(size), "runs": runs})
    return merged


def score_of(record):
    """A record's test accuracy (a `peers.py` cell's or a main-job run's child's)."""
    return record.get("test_accuracy", record.get("child_test_accuracy"))


def _scores_by_cpu(records):
    """`{cpu: [test accuracy]}`, every run of `records` under its own CPU (seeds run on several CPUs too)."""
    by_cpu = {}
    for record in records:
        by_cpu.setdefault(cpu_label(record), []).append(score_of(record))
    return by_cpu


def parameters_of(records):
    """Each record's parameter count (a `peers.py` cell's or a main-job run's child's)."""
    return [r.get("parameters") or r.get("child_parameters") for r in records]


def describe(label, scores, records):
    line = f"{label:<30} {shown_mean_sd(scores):<18} n={len(scores)}: {', '.join(f'{s:.4f}' for s in scores)}"
    parameters = parameters_of(records)
    if all(parameters):
        line += f"; {min(parameters):,}-{max(parameters):,} parameters"
    cpus = [cpu_label(run) for r in records for run in r.get("runs", [r])]
    return line + "; " + ", ".join(f"{name} x {cpus.count(name)}" for name in sorted(set(cpus)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--system", choices=ENAS_SYSTEMS, default="enas-macro")
    parser.add_argument("--budget-minutes", type=float, default=15.0)
    parser.add_argument("--search-fraction", type=float, default=0.25, help="the search's share (the main job's 0.25)")
    parser.add_argument("--final-batch-size", type=int, default=FINAL_BATCH_SIZE)
    # The options that name a peers.py cell's variant, as peers.py takes them.
    parser.add_argument("--enas-stem-strides", type=int, default=1)
    parser.add_argument("--retrain-filters", type=int, default=None)
    parser.add_argument("--retrain-cutout", type=int, default=None)
    parser.add_argument("--final-augment", type=int, default=None, metavar="PAD")
    parser.add_argument("--largest-of", type=int, default=100, metavar="N",
                        help="the size rule's cells to read (peers.py --largest-of N; 100)")
    parser.add_argument("--main-job", action="store_true", help="add the main job's runs on that final minibatch")
    parser.add_argument("--cpu", help="only the cells and runs of this CPU (e.g. 'AMD EPYC'; default: every CPU)")
    parser.add_argument("--results", default=RESULTS)
    parser.add_argument("--main-job-results", default=MAIN_JOB_RESULTS)
    args = parser.parse_args()
    groups = cells_by_searcher(read_results(args.results), args)
    if args.main_job:
        main_job_setting = (args.system, args.budget_minutes, args.search_fraction, args.enas_stem_strides,
                            args.retrain_filters, args.retrain_cutout, args.final_augment)
        if main_job_setting != ("enas-macro", 15.0, 0.25, 1, None, None, None):
            parser.error("--main-job compares the main job's 15-minute ENAS macro runs (a quarter searching, no "
                         "retraining variant): leave --system, --budget-minutes, --search-fraction and the variant "
                         "options at enas-macro, 15, 0.25 and their defaults.")
        runs = [r for r in read_runs(args.main_job_results) if r.get("retrain_batch_size") == args.final_batch_size]
        groups = {"main job (scripts/demo.sh)": runs, **groups}
    recorded_cpus = sorted({cpu_label(r) for group in groups.values() for r in group})
    by_cpu = {label: _scores_by_cpu(group) for label, group in groups.items()}
    if args.cpu:
        groups = {label: [r for r in group if cpu(r) == args.cpu] for label, group in groups.items()}
    else:
        runs_before = sum(map(len, groups.values()))
        groups = {label: group if label.startswith("main job") else one_per_seed(group) for label, group in groups.items()}
        if sum(map(len, groups.values())) < runs_before:
            print("(every CPU: a seed run on several CPUs counts once, at the mean of its runs)")
    scores = {label: [score_of(r) for r in group] for label, group in groups.items()}
    control = scores["random children"]
    if len(control) < 2:
        raise SystemExit(f"{len(control)} random-child cells recorded for {args.cpu or 'every CPU'}: at least 2 are "
                         f"needed for a spread (CPUs recorded in this setting: {', '.join(recorded_cpus)}).")
    searchers = {label: values for label, values in scores.items() if label != "random children" and len(values) >= 2}
    print(f"{args.system}, {args.budget_minutes:g} minutes, {args.search_fraction:g} of them searching, final minibatch "
          f"{args.final_batch_size}, {args.cpu or 'every CPU'}; test accuracy:")
    for label, group in groups.items():
        if group:
            print("  " + describe(label, scores[label], group))
    _, spread = mean_sd(control)
    print(f"\nagainst the random children (Welch 90 % interval; in random-child sd {spread:.4f}; one-sided p):")
    for label, values in searchers.items():
        difference, low, high, p = welch(values, control)
        print(f"  {label:<30} {difference:+.4f} [{low:+.4f}, {high:+.4f}] = {difference / spread:+.2f} sd, p = {p:.3f}")
    spreads = [mean_sd(values)[1] for values in by_cpu["random children"].values() if len(values) >= 2]
    if not args.cpu and len(recorded_cpus) > 1 and spreads:
        print("\nagainst the random children within each CPU (each CPU's difference, inverse-variance weighted; "
              "Welch-Satterthwaite 90 % interval; one-sided p):")
        within_spread = float(np.sqrt(np.mean(np.square(spreads))))
        for label in searchers:
            combined = welch_within_cpus(by_cpu[label], by_cpu["random children"])
            if combined is None:
                continue
            difference, low, high, p, per_cpu = combined
            parts = ", ".join(f"{name} {d:+.4f} ({n} vs {m})" for name, (d, n, m) in per_cpu.items())
            print(f"  {label:<30} {difference:+.4f} [{low:+.4f}, {high:+.4f}] = {difference / within_spread:+.2f} sd, "
                  f"p = {p:.3f}; {parts}")
        print(f"  (sd: the random children's within one CPU, {within_spread:.4f}, the root mean square of each CPU's)")
    labels = list(searchers)
    if len(labels) > 1:
        print("\nsearchers against each other (Welch 90 % interval; two-sided p):")
        for index, first in enumerate(labels):
            for second in labels[index + 1:]:
                difference, low, high, p = welch(searchers[first], searchers[second])
                two_sided = 2 * min(p, 1 - p)
                print(f"  {first} - {second}: {difference:+.4f} [{low:+.4f}, {high:+.4f}], p = {two_sided:.3f}")

    sizes = {label: parameters_of(groups[label]) for label in scores}
    sized = {label: (sizes[label], values) for label, values in searchers.items() if all(sizes[label])}
    if all(sizes["random children"]):
        print_beyond_size(sizes["random children"], control, sized)
    else:
        print("\nbeyond size: not computed, some random children's sizes are not recorded")


if __name__ == "__main__":
    main()
