"""The cells of benchmarks/peers.py: what identifies one, the results file, the README's table and the plot."""

import itertools
import json
from pathlib import Path

import numpy as np

SYSTEMS = ("enas-macro", "enas-micro", "rlsearch-vanilla", "kt-random", "kt-hyperband", "autokeras", "cnn-bn")
#: Systems that search before their final training (and so split the budget).
SEARCHING = tuple(s for s in SYSTEMS if s != "cnn-bn")
#: Systems searched by `ENASTuner`: the ones with retraining options and a random-child control.
ENAS_SYSTEMS = ("enas-macro", "enas-micro")
#: The results file every cell is appended to unless `--results` names another.
RESULTS = Path(__file__).resolve().parent / "results" / "peers.jsonl"
#: Minibatch of every final training unless `--final-batch-size` says otherwise.
FINAL_BATCH_SIZE = 128


def cell_key(record):
    """What identifies a cell: system, budget, seed, (for a search) the search share, the variant and the CPU.

    The budget is wall-clock time, so the same cell run on another CPU is
    another measurement, kept beside the first rather than in its place.
    """
    return (record["system"], float(record["budget_minutes"]), int(record["seed"]), record.get("search_fraction"),
            record.get("variant"), cpu(record))


def cpu(record):
    """The CPU a cell or a main-job run ran on, short: `"AMD EPYC"`, `"Intel Xeon"` (`None` if not recorded)."""
    model = (record.get("machine") or {}).get("cpu_model")
    return record.get("cpu") or (model and " ".join(word for word in model.replace("(R)", "").split() if word != "Processor"))


def cpu_label(record):
    """`cpu(record)`, or `"CPU not recorded"` where it is `None`, to group and print by."""
    return cpu(record) or "CPU not recorded"


def variant(args):
    """What sets a cell's system apart from its default, e.g. `"stem stride 2"`; `None` for the default."""
    final_training = [f"final crop {args.final_augment} + flip"] if args.final_augment else []
    if args.final_batch_size != FINAL_BATCH_SIZE:
        final_training.append(f"final minibatch {args.final_batch_size}")
    if args.system not in ENAS_SYSTEMS:
        return ", ".join(final_training) or None
    parts = ["random child"] if args.random_child else []
    if args.largest_of:
        parts.append(f"largest of {args.largest_of}")
    if args.enas_stem_strides != 1:
        parts.append(f"stem stride {args.enas_stem_strides}")
    if args.retrain_filters:
        parts.append(f"retrain width {args.retrain_filters}")
    if args.retrain_cutout:
        parts.append(f"cutout {args.retrain_cutout}")
    for name, value in sorted(json.loads(args.enas_options or "{}").items()):
        parts.append(f"{name}={json.dumps(value)}")
    return ", ".join(parts + final_training) or None


def search_fraction(args):
    """The search's share of the budget: `None` without a search, all of it for AutoKeras without `--autokeras-epochs`.

    With `epochs=None` AutoKeras keeps the best trial's model and trains no
    final model, so its search gets the whole budget.
    """
    if args.system not in SEARCHING:
        return None
    if args.system == "autokeras" and not args.autokeras_epochs:
        return 1.0
    return args.search_fraction


def cell_name(args):
    name = args.system + (f"-{variant(args).replace(' ', '').replace(',', '-')}" if variant(args) else "")
    return f"{name}-{args.budget_minutes:g}min-seed{args.seed}"


def read_results(path):
    """The recorded cells, the last line of each key winning."""
    if not Path(path).exists():
        return []
    cells = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            cells[cell_key(record)] = record
    return list(cells.values())


def groups(records):
    """`{(system, search_fraction, variant): {budget_minutes: [records]}}`."""
    grouped = {}
    for record in records:
        key = (record["system"], record.get("search_fraction"), record.get("variant"))
        by_budget = grouped.setdefault(key, {})
        by_budget.setdefault(float(record["budget_minutes"]), []).append(record)
    return grouped


def label(system, fraction, variant=None):
    notes = ([] if fraction in (None, 0.5) else [f"search {fraction:g}"]) + ([variant] if variant else [])
    return system + (f" ({', '.join(notes)})" if notes else "")


def mean_sd(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None


def shown_mean_sd(values):
    """`values`' mean +- sd to four places, the mean alone for one value."""
    mean, sd = mean_sd(values)
    return f"{mean:.4f}" if sd is None else f"{mean:.4f} +- {sd:.4f}"


def table(records):
    """The markdown table: one row per system and budget, mean +- sd over its runs (seeds, and CPUs where they differ)."""
    lines = [
        "| system | budget (min) | test accuracy | runs | CPU | parameters | search / final training (min) | load average |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = {system: i for i, system in enumerate(SYSTEMS)}
    grouped = groups(records)
    for system, fraction, kind in sorted(grouped, key=lambda key: (order.get(key[0], 99), key[1] or 0, key[2] or "")):
        for budget, cells in sorted(grouped[(system, fraction, kind)].items()):
            shown = shown_mean_sd([c["test_accuracy"] for c in cells])
            parameters = f"{np.mean([c['parameters'] for c in cells]):,.0f}"
            search = np.mean([c["seconds_search"] for c in cells]) / 60
            train = np.mean([c["seconds_train"] for c in cells]) / 60
            load = np.mean([c["load_average_start"][0] for c in cells])
            late = sum(not c["within_budget"] for c in cells)
            note = f" ({late} over budget)" if late else ""
            cpus = [cpu(c) or "?" for c in cells]
            shown_cpus = ", ".join(f"{name} x {cpus.count(name)}" if len(set(cpus)) > 1 else name
                                   for name in sorted(set(cpus)))
            lines.append(f"| {label(system, fraction, kind)} | {budget:g} | {shown}{note} | {len(cells)} | {shown_cpus} "
                         f"| {parameters} "
                         f"| {search:.1f} / {train:.1f} | {load:.1f} |")
    return "\n".join(lines)


def plot(records, path):
    """Test accuracy against budget, one line per system, error bars one sd over its runs (seeds and CPUs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 4.5))
    # More lines than the default ten colours: tab20's colours (cycled past twenty), and a dashed line for a system's variants.
    colours = itertools.cycle(plt.get_cmap("tab20").colors)
    for (system, fraction, kind), by_budget in sorted(groups(records).items(),
                                                      key=lambda item: (item[0][0], item[0][2] or "")):
        budgets = sorted(by_budget)
        stats = [mean_sd([c["test_accuracy"] for c in by_budget[b]]) for b in budgets]
        axes.errorbar(budgets, [m for m, _ in stats], yerr=[sd or 0.0 for _, sd in stats], marker="o",
                      capsize=3, label=label(system, fraction, kind), color=next(colours),
                      linestyle="--" if fraction not in (None, 0.5) or kind else "-")
    axes.set_xlabel("wall-clock budget, search + final training (minutes)")
    axes.set_ylabel("Fashion-MNIST test accuracy")
    axes.set_title("Same budget, 2-core CPUs: test accuracy against budget")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")
