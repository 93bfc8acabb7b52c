"""A search's report: a summary, a table of trials and PNG figures, written to a folder."""

import os

from keras_rlnas.reporting import decisions, plots
from keras_rlnas.reporting.view import skip_rate


def trial_rows(view):
    """One dict per trial: `trial`, `status`, `score`, `best` (so far), `reward`, `skip_rate`.

    `reward` is what the controller learned from the trial (e.g. the cubed
    accuracy of `reward="nas"`), `None` before the controller used it.
    """
    rewards = {}
    for update in view.history:
        for trial_id, reward in zip(update.get("trials") or [], update.get("rewards") or []):
            if trial_id is not None:
                rewards[trial_id] = reward
    rows, best = [], None
    for trial in view.trials:
        if trial.score is not None:
            best = trial.score if best is None else max(best, trial.score)
        rows.append({
            "trial": trial.trial_id,
            "status": trial.status,
            "score": trial.score,
            "best": best,
            "reward": rewards.get(trial.trial_id),
            "skip_rate": skip_rate(trial.hyperparameters.values),
        })
    return rows


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_table(rows, objective="score", limit=None):
    """A Markdown table of `trial_rows`, best first when `limit` is given.

    Example:

    >>> print(format_table([{"trial": "0", "status": "COMPLETED", "score": 0.5, "best": 0.5,
    ...                      "reward": None, "skip_rate": None}], "val_accuracy"))
    | trial | status | val_accuracy | best so far | reward | skip rate |
    |---|---|---|---|---|---|
    | 0 | COMPLETED | 0.5000 | 0.5000 | - | - |
    """
    if limit is not None:
        rows = sorted(rows, key=lambda r: -r["score"] if r["score"] is not None else float("inf"))[:limit]
    lines = [
        f"| trial | status | {objective} | best so far | reward | skip rate |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row["trial"], row["status"], row["score"], row["best"], row["reward"], row["skip_rate"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def summary_lines(view, rows, extra=None):
    """Plain-text summary lines: trial counts, best trial, controller state, extra facts."""
    completed = [r for r in rows if r["score"] is not None]
    failed = [r for r in rows if r["status"] == "FAILED"]
    lines = [f"trials: {len(rows)} ({len(completed)} completed, {len(failed)} failed)"]
    if completed:
        best = max(completed, key=lambda r: r["score"])
        lines.append(f"best trial: {best['trial']} with {view.objective} {best['score']:.4f}")
    if view.history:
        last = view.history[-1]
        lines.append(
            f"controller steps: {len(view.history)}; last: reward {last['reward']:.4f}, "
            f"baseline {last['baseline']:.4f}, entropy {last['entropy']:.3f}"
        )
    else:
        lines.append("controller steps: 0")
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {value}")
    return lines


def write_report(view, out_dir, graphs=None, extra=None, samples=500):
    """Writes `report.md`, `trials.md` and the PNG figures of a search.

    Args:
        view: a `ControllerView` of the tuner (`controller_view(tuner)`).
        out_dir: the folder to write (created).
        graphs: the best architecture to draw, `[(title, nodes)]`, or `None`.
        extra: `{label: value}` facts for the summary (e.g. test accuracy).
        samples: architectures sampled to estimate the decision probabilities.

    Returns:
        `{"summary": [lines], "table": str, "files": [paths]}`.

    Example:

    ```python
    from keras_rlnas.reporting import controller_view, write_report
    report = write_report(controller_view(tuner), "results/report")
    print("\\n".join(report["summary"]))
    ```
    """
    os.makedirs(out_dir, exist_ok=True)
    rows = trial_rows(view)
    files = [
        plots.plot_controller(view.history, os.path.join(out_dir, "controller.png")),
        plots.plot_best_so_far([r["score"] for r in rows], os.path.join(out_dir, "best_so_far.png"), view.objective),
    ]
    estimate = decisions.policy_probabilities(view, samples)
    if estimate is not None:
        files.append(plots.plot_decisions(*estimate, os.path.join(out_dir, "decisions.png")))
    if graphs:
        files.append(plots.plot_architecture(graphs, os.path.join(out_dir, "architecture.png")))
    summary = summary_lines(view, rows, extra)
    table = format_table(rows, view.objective)
    with open(os.path.join(out_dir, "trials.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("# Search report\n\n" + "\n".join(f"- {line}" for line in summary) + "\n\n")
        f.write("## Best trials\n\n" + format_table(rows, view.objective, limit=10) + "\n\n")
        f.write("All trials: [trials.md](trials.md)\n\n## Figures\n\n")
        f.write("\n".join(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in files) + "\n")
    return {"summary": summary, "table": table, "rows": rows, "files": files + [os.path.join(out_dir, "report.md")]}
