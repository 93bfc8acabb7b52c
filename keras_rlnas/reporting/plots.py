"""PNG figures of a search: controller curves, best so far, decision heat map, architecture.

Figures are drawn with Matplotlib's object API on the Agg canvas, so they
need no display and leave `pyplot`'s global state alone.
"""

import math

import numpy as np


def _figure(width, height):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "Plots need matplotlib: `pip install matplotlib` (or `pip install keras-rlnas[plots]`)."
        ) from error
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _empty(axes, text):
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="0.4")
    axes.set_xticks([])
    axes.set_yticks([])


def _integer_ticks(axes):
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_controller(history, path, title="controller"):
    """Reward (each architecture's and the batch mean), baseline and entropy per controller step.

    Args:
        history: dicts with `step`, `reward`, `baseline`, `entropy` and
            optionally `rewards` (the batch's individual rewards).
        path: the PNG to write.

    Returns:
        `path`.
    """
    figure = _figure(7, 5)
    reward_axes, entropy_axes = figure.subplots(2, 1, sharex=True)
    if not history:
        _empty(reward_axes, "no controller update yet")
        _empty(entropy_axes, "")
        return _save(figure, path)
    steps = [h.get("step", i) for i, h in enumerate(history)]
    for step, h in zip(steps, history):
        rewards = h.get("rewards") or []
        reward_axes.scatter([step] * len(rewards), rewards, s=9, color="tab:blue", alpha=0.35, linewidths=0)
    reward_axes.plot(steps, [h["reward"] for h in history], color="tab:blue", marker=".", label="mean reward")
    reward_axes.plot(steps, [h["baseline"] for h in history], color="tab:orange", label="baseline")
    reward_axes.set_ylabel("reward")
    reward_axes.legend(loc="lower right", fontsize=8)
    reward_axes.set_title(title)
    reward_axes.grid(alpha=0.3)
    entropy_axes.plot(steps, [h["entropy"] for h in history], color="tab:green", marker=".")
    entropy_axes.set_ylabel("policy entropy (nats)")
    entropy_axes.set_xlabel("controller step")
    _integer_ticks(entropy_axes)
    entropy_axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_best_so_far(scores, path, objective="score"):
    """Each trial's score and the best so far, in trial order (`None`: failed trial)."""
    figure = _figure(7, 3.5)
    axes = figure.subplots()
    done = [(i, s) for i, s in enumerate(scores) if s is not None]
    if not done:
        _empty(axes, "no completed trial yet")
        return _save(figure, path)
    x, y = zip(*done)
    axes.scatter(x, y, s=14, color="tab:blue", alpha=0.6, label="trial")
    axes.step(x, np.maximum.accumulate(y), where="post", color="tab:red", label="best so far")
    failed = [i for i, s in enumerate(scores) if s is None]
    if failed:
        axes.scatter(failed, [min(y)] * len(failed), marker="x", color="0.5", label="failed")
    axes.set_xlabel("trial")
    _integer_ticks(axes)
    axes.set_ylabel(objective)
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    return _save(figure, path)


def plot_decisions(rows, skips, path, title="decision probabilities"):
    """Heat maps of the policy: one row per hyperparameter, one matrix per group of skip choices.

    Args:
        rows: `DecisionRow`s (see `keras_rlnas.reporting.decisions`).
        skips: `{group: matrix}` of skip probabilities.
        path: the PNG to write.
    """
    width = max([len(r.labels) for r in rows] + [2])
    panels = (1 if rows else 0) + len(skips)
    heights = [max(1.5, 0.28 * len(rows) + 0.8)] * (1 if rows else 0) + [max(2.0, 0.35 * m.shape[0] + 1.0) for m in skips.values()]
    figure = _figure(max(6.0, 0.55 * width + 3.0), sum(heights) + 0.4 * max(panels, 1))
    if not panels:
        _empty(figure.subplots(), "no controller decision to show")
        return _save(figure, path)
    axes_list = figure.subplots(panels, 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    if rows:
        axes = axes_list[0]
        grid = np.full((len(rows), width), np.nan)
        for i, row in enumerate(rows):
            grid[i, : len(row.probabilities)] = row.probabilities
        image = axes.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
        for i, row in enumerate(rows):
            for j, label in enumerate(row.labels):
                shade = "white" if row.probabilities[j] < 0.6 else "black"
                axes.text(j, i, f"{label}\n{row.probabilities[j]:.2f}", ha="center", va="center", fontsize=6, color=shade)
        axes.set_yticks(range(len(rows)), [r.name for r in rows], fontsize=7)
        axes.set_xticks(range(width), [f"choice {k}" for k in range(width)], fontsize=7)
        axes.set_title(title, fontsize=9)
        figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02, label="probability")
    for axes, (group, matrix) in zip(axes_list[1 if rows else 0 :], skips.items()):
        image = axes.imshow(matrix, cmap="magma", vmin=0.0, vmax=1.0)
        size = matrix.shape[0]
        for i in range(size):
            for j in range(size):
                if not math.isnan(matrix[i, j]):
                    axes.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6,
                              color="white" if matrix[i, j] < 0.6 else "black")
        axes.set_xticks(range(size), [str(j) for j in range(size)], fontsize=7)
        axes.set_yticks(range(size), [str(i) for i in range(size)], fontsize=7)
        axes.set_xlabel(f"{group}[j]: earlier position read", fontsize=8)
        axes.set_ylabel(f"{group}[i]", fontsize=8)
        axes.set_title(f"P({group}[i].skip[j])", fontsize=9)
        figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    return _save(figure, path)


def _draw_graph(axes, nodes, title):
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    # About 0.1 data units per character at font size 7.
    box_width = max(3.2, 0.1 * max(len(node["label"]) for node in nodes) + 0.8)
    box_height = 0.55
    positions = [(0.0, -1.0 * k) for k in range(len(nodes))]
    for k, node in enumerate(nodes):
        x, y = positions[k]
        axes.add_patch(FancyBboxPatch(
            (x - box_width / 2, y - box_height / 2), box_width, box_height,
            boxstyle="round,pad=0.02,rounding_size=0.12", facecolor="#dbe9f6", edgecolor="#3b6ea5",
        ))
        axes.text(x, y, node["label"], ha="center", va="center", fontsize=7)
        for source in node["inputs"]:
            sx, sy = positions[source]
            if k - source == 1:
                arrow = FancyArrowPatch((sx, sy - box_height / 2), (x, y + box_height / 2),
                                        arrowstyle="-|>", mutation_scale=9, color="0.25")
            else:
                # Longer connections bow out to the right, farther for longer spans.
                bend = -min(0.9, 0.18 + 0.08 * (k - source))
                arrow = FancyArrowPatch((sx + box_width / 2, sy), (x + box_width / 2, y),
                                        connectionstyle=f"arc3,rad={bend}", arrowstyle="-|>",
                                        mutation_scale=9, color="tab:orange", alpha=0.8)
            axes.add_patch(arrow)
    axes.set_xlim(-box_width / 2 - 0.3, box_width / 2 + 0.4 + 0.5 * min(len(nodes), 8))
    axes.set_ylim(-len(nodes) + 0.3, 0.7)
    axes.set_aspect("equal")
    axes.axis("off")
    axes.set_title(title, fontsize=9)


def plot_architecture(graphs, path):
    """Draws architectures as boxes (layers or nodes) and arrows (their inputs).

    Args:
        graphs: `[(title, nodes)]`, a node `{"label": str, "inputs": [earlier indices]}`.
        path: the PNG to write.
    """
    tallest = max(len(nodes) for _, nodes in graphs)
    widest = max(len(node["label"]) for _, nodes in graphs for node in nodes)
    figure = _figure(max(5.0, 0.1 * widest + 2.5) * len(graphs), 0.75 * tallest + 1.0)
    axes_list = figure.subplots(1, len(graphs), squeeze=False)[0]
    for axes, (title, nodes) in zip(axes_list, graphs):
        _draw_graph(axes, nodes, title)
    return _save(figure, path)
