"""Every run of the main job against its same-run floor, and what they add up to.

`scripts/demo.sh` ends by comparing its child with the 2-conv + BN CNN trained for
the main job's wall time in the same run (`versus_floor.py`, `RUN/versus_floor.json`).
One run cannot tell a lead from noise: children differ from run to run by about
0.003 test accuracy. This script keeps one JSON line per run in `--results` and
prints, per retraining recipe, the runs, the children's and floors' mean +- sd and
the mean margin (child minus floor) with its 90 % Student t interval.

Commands
--------
    python benchmarks/main_job_runs.py                                  # the table and the tally
    python benchmarks/main_job_runs.py --add runs/demo --load 0.3-2.7   # record a finished run
    python benchmarks/main_job_runs.py --cpu "Intel Xeon"               # only the runs on one CPU

`--add` reads `RUN/versus_floor.json`, `RUN/run.json`, `RUN/best/retrain.json` and
`RUN/floor.jsonl` (whose line names the commit the run's code was at); the recipe is
named by the retraining's minibatch (`retrain batch 64`) unless `--recipe` names it.
A run is known by when its search started, so a copied or renamed run directory is
refused and a directory reused for a new run is not. The runs before this script
existed are transcribed from their write-ups (`"source"` says so) and carry what
those recorded.
"""

import argparse
import datetime
import json
import statistics
from pathlib import Path

from peers_results import cpu, cpu_label, read_results, shown_mean_sd
from scipy import stats

RESULTS = Path(__file__).parent / "results" / "main_job_runs.jsonl"


def record_of(run_directory, load, recipe=None, note=None):
    """The JSON record of one finished `scripts/demo.sh` run in `run_directory`.

    Args:
        run_directory: the run's directory, holding `versus_floor.json`, `run.json`,
            `best/retrain.json` and `floor.jsonl`.
        load: the load average while it ran, as text (e.g. `"0.3-2.7"`).
        recipe: the name of the run's recipe; by default its retraining minibatch.
        note: anything else worth keeping with the run.

    Returns:
        A dict of the run's figures: `child_test_accuracy`, `floor_test_accuracy`,
        `margin`, `minutes`, `enas_epochs`, `child_parameters`, `retrain_epochs`,
        `retrain_batch_size`, `floor_epochs`, `load`, `started`, the CPU (the
        floor's, run on the same machine) and where they came from.

    Raises:
        ValueError: `run_directory` is not a finished `scripts/demo.sh` run.
    """
    run = Path(run_directory)
    names = ("versus_floor.json", "run.json", "best/retrain.json", "floor.jsonl")
    missing = [name for name in names if not (run / name).is_file()]
    if missing:
        raise ValueError(f"run_directory={str(run)!r} lacks {', '.join(missing)}: not a finished scripts/demo.sh run.")
    versus, search, child = (json.loads((run / name).read_text()) for name in names[:3])
    floor = read_results(run / "floor.jsonl")[-1]
    last_call = (search.get("calls") or [{}])[-1]  # run.json before the call record has `finished` alone
    if "done" not in last_call and "finished" not in search:
        raise ValueError(f"run_directory={str(run)!r}: its run.json records no finished search.")
    record = {
        "run": run.name,
        "started": search.get("started"),
        "date": search.get("started", datetime.date.today().isoformat())[:10],
        "recipe": recipe or f"retrain batch {child['batch_size']}",
        "child_test_accuracy": round(versus["child_test_accuracy"], 4),
        "floor_test_accuracy": round(versus["floor_test_accuracy"], 4),
        "margin": round(versus["margin"], 4),
        "minutes": round(versus["main_job_seconds"] / 60, 2),
        "enas_epochs": last_call.get("done"),
        "search_seed": search["search"]["seed"],
        "child_parameters": child["params"],
        "retrain_epochs": child["epochs"],
        "retrain_batch_size": child["batch_size"],
        "floor_epochs": versus.get("floor_epochs"),
        "load": load,
        "commit": (floor.get("commit") or "")[:7] or None,
        "cpu": cpu(floor),
        "source": f"scripts/demo.sh {run}",
    }
    if note:
        record["note"] = note
    return record


def read_runs(path):
    """The records in the JSON-lines file `path` (none if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def t_interval(values, level=0.90):
    """`(mean, low, high)`: the mean of `values` and its Student t interval (`low`, `high` None for one value)."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, None, None
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def tally(records):
    """Lines summing up `records` per recipe (per CPU too where a recipe ran on several), then over all of them.

    The main job's budget is wall-clock time, so a slower CPU trains fewer epochs in it:
    a recipe's runs on different CPUs are summed up apart before they are summed up together.
    """
    lines = []
    recipes = list(dict.fromkeys(r["recipe"] for r in records))
    for recipe in recipes:
        group = [r for r in records if r["recipe"] == recipe]
        cpus = list(dict.fromkeys(cpu_label(r) for r in group))
        if len(cpus) > 1:
            lines += [_summary(f"{recipe}, {name}", [r for r in group if cpu_label(r) == name]) for name in cpus]
        lines.append(_summary(recipe + (", every CPU" if len(cpus) > 1 else ""), group))
    if len(recipes) > 1:
        lines.append(_summary("all runs", records))
    return lines


def _summary(name, group):
    children = [r["child_test_accuracy"] for r in group]
    line = f"{name}: {len(children)} run{'s' * (len(children) > 1)}, children {shown_mean_sd(children)}"
    with_floor = [r for r in group if r.get("margin") is not None]
    if not with_floor:
        return line
    margins = [r["margin"] for r in with_floor]
    mean, low, high = t_interval(margins)
    mean = round(mean, 10) + 0.0  # a mean that is zero but for rounding prints as +0.0000, not -0.0000
    shown = f"{mean:+.4f}" + (f" [90 % t {low:+.4f}, {high:+.4f}]" if low is not None else "")
    floors = shown_mean_sd([r["floor_test_accuracy"] for r in with_floor])
    return f"{line}; floors {floors}; margin {shown} over {len(margins)}, ahead in {sum(m > 0 for m in margins)}"


def table(records):
    """One line per run: recipe, child, floor, margin, minutes, ENAS epochs, parameters, retraining epochs, load, CPU."""
    lines = [f"{'run':<10} {'recipe':<24} {'child':>6} {'floor':>6} {'margin':>7} {'min':>6} {'ENAS':>4} "
             f"{'params':>8} {'epochs':>6}  {'load':<10} CPU"]
    for r in records:
        floor = "" if r.get("floor_test_accuracy") is None else f"{r['floor_test_accuracy']:.4f}"
        margin = "" if r.get("margin") is None else f"{r['margin']:+.4f}"
        lines.append(
            f"{r['run']:<10} {r['recipe']:<24} {r['child_test_accuracy']:.4f} {floor:>6} {margin:>7} "
            f"{r['minutes']:>6} {r.get('enas_epochs') or '':>4} {r['child_parameters']:>8,} "
            f"{r.get('retrain_epochs') or '':>6}  {r.get('load', ''):<10} {r.get('cpu') or ''}".rstrip()
        )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS), help="the runs' JSON-lines file")
    parser.add_argument("--add", metavar="RUN", help="record the finished scripts/demo.sh run in RUN")
    parser.add_argument("--load", help="with --add: the load average while it ran, e.g. 0.3-2.7")
    parser.add_argument("--recipe", help="with --add: the recipe's name (default: its retraining minibatch)")
    parser.add_argument("--note", help="with --add: anything else worth keeping with the run")
    parser.add_argument("--recipes", nargs="+", help="tally only these recipes")
    parser.add_argument("--cpu", help='tally only the runs on this CPU, e.g. "Intel Xeon"')
    args = parser.parse_args()
    stray = [flag for flag, value in (("--load", args.load), ("--recipe", args.recipe), ("--note", args.note)) if value]
    if stray and not args.add:
        parser.error(f"{', '.join(stray)} describe a run being recorded: they need --add RUN.")
    records = read_runs(args.results)
    if args.add:
        if not args.load:
            parser.error("--add needs --load: a figure without its load average cannot be weighed.")
        try:
            record = record_of(args.add, args.load, args.recipe, args.note)
        except ValueError as error:
            parser.error(str(error))
        same = [r["run"] for r in records if r["source"] == record["source"]
                or (record["started"] and r.get("started") == record["started"])]
        if same:
            parser.error(f"{args.add!r} is already in {args.results} (as {same[0]!r}).")
        with open(args.results, "a") as results:
            results.write(json.dumps(record) + "\n")
        records.append(record)
    if args.recipes:
        records = [r for r in records if r["recipe"] in args.recipes]
    if args.cpu:
        recorded = sorted({r["cpu"] for r in records if r.get("cpu")})
        records = [r for r in records if r.get("cpu") == args.cpu]
        if not records:
            parser.error(f"--cpu={args.cpu!r}: no runs on it; the runs record {recorded or 'no CPU'}.")
    if not records:
        parser.error(f"no runs in {args.results}" + (f" of recipes {args.recipes}" if args.recipes else "") + ".")
    print("\n".join(table(records) + [""] + tally(records)))


if __name__ == "__main__":
    main()
