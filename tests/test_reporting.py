"""Reports, figures, TensorBoard summaries and the progress line, on a controller that trains nothing."""

import dataclasses
import io
import os
import struct

import keras
import keras_tuner
import numpy as np
import pytest

from keras_rlnas.cli import ProjectError, recipes
from keras_rlnas.controller import Controller
from keras_rlnas.decision_map import DecisionMap
from keras_rlnas.oracle import DEFAULT_CONTROLLER_OPTIONS
from keras_rlnas.reporting import (
    ControllerSummaries,
    ControllerView,
    controller_view,
    decisions,
    plots,
    write_report,
)
from keras_rlnas.reporting.monitor import ProgressLine, SearchMonitor

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """`(width, height)` of a PNG file, checking its signature and header chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def make_view(num_trials=6, update_every=2):
    """A vanilla-space view: a real controller and decision map, trials and history made up."""
    space = recipes.get("vanilla").make_space((8, 8, 1), 3, {"num_layers": 3})
    hp = keras_tuner.HyperParameters()
    space.describe(hp)
    decision_map = DecisionMap()
    controller = Controller(decision_map.sync(hp), seed=0, **DEFAULT_CONTROLLER_OPTIONS)
    rng = np.random.default_rng(0)
    trials, history = [], []
    for i in range(num_trials):
        values, _ = decision_map.sample(hp, controller)
        trial_hp = hp.copy()
        trial_hp.values = values
        trial = keras_tuner.engine.trial.Trial(trial_hp, trial_id=str(i), status="COMPLETED")
        trial.score = float(rng.uniform(0.2, 0.9)) if i != 3 else None
        if trial.score is None:
            trial.status = "FAILED"
        trials.append(trial)
    for step in range(num_trials // update_every):
        batch = trials[step * update_every : (step + 1) * update_every]
        rewards = [(t.score or 0.0) ** 3 for t in batch]
        history.append({"step": step, "reward": float(np.mean(rewards)), "baseline": 0.1 * step, "entropy": 9.0 - step,
                        "loss": 0.5, "rewards": rewards, "trials": [t.trial_id for t in batch]})
    view = ControllerView(trials, "val_accuracy", history, controller, decision_map, hp)
    return view, space


def test_report_writes_real_pngs_and_tables(tmp_path):
    view, space = make_view()
    values = view.trials[0].hyperparameters.values
    recipe = recipes.get("vanilla")
    graphs = recipe.graphs(space, recipe.architecture(space, values))
    result = write_report(view, str(tmp_path), graphs=graphs, extra={"dataset": "fashion_mnist"}, samples=100)
    names = sorted(os.path.basename(p) for p in result["files"])
    assert names == ["architecture.png", "best_so_far.png", "controller.png", "decisions.png", "report.md"]
    for path in result["files"]:
        if path.endswith(".png"):
            width, height = png_size(path)
            assert width > 200 and height > 150
            assert os.path.getsize(path) > 5000
    rows = result["rows"]
    assert [r["trial"] for r in rows] == [str(i) for i in range(6)]
    assert rows[3]["status"] == "FAILED" and rows[3]["score"] is None
    bests = [r["best"] for r in rows]
    assert all(b2 >= b1 for b1, b2 in zip(bests, bests[1:]))
    assert rows[0]["reward"] == pytest.approx(view.trials[0].score ** 3)
    report = (tmp_path / "report.md").read_text()
    assert "| trial | status | val_accuracy |" in report and "controller steps: 3" in report
    assert "dataset: fashion_mnist" in report
    assert (tmp_path / "trials.md").read_text().count("\n") == 2 + 6


def test_empty_search_still_gives_figures(tmp_path):
    view, _ = make_view(num_trials=0)
    view = dataclasses.replace(view, controller=None)
    result = write_report(view, str(tmp_path))
    assert sorted(os.path.basename(p) for p in result["files"]) == ["best_so_far.png", "controller.png", "report.md"]
    for path in result["files"][:2]:
        png_size(path)


def test_decision_probabilities_sum_to_one_and_leave_the_controller_as_it_was():
    view, _ = make_view()
    before = view.controller.sample().actions
    view.controller.rng = np.random.default_rng(5)
    state = view.controller.rng.bit_generator.state
    rows, skips = decisions.policy_probabilities(view, samples=200)
    assert view.controller.rng.bit_generator.state == state
    names = [r.name for r in rows]
    assert "layers[0].filter_height" in names and not any("skip" in n for n in names)
    for row in rows:
        assert row.probabilities.sum() == pytest.approx(1.0)
        assert len(row.labels) == len(row.probabilities)
    matrix = skips["layers"]
    assert matrix.shape == (3, 3)
    assert np.isnan(matrix[0, 0]) and 0.0 <= matrix[2, 1] <= 1.0
    assert len(before) == len(view.controller.decisions)


def read_tags(log_dir):
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(log_dir, size_guidance={"tensors": 0})
    accumulator.Reload()
    return {tag: len(accumulator.Tensors(tag)) for tag in accumulator.Tags()["tensors"]}


def test_tensorboard_summaries_are_written_once(tmp_path):
    view, _ = make_view()
    summaries = ControllerSummaries(str(tmp_path), samples=50)
    summaries.write(view, write_hparams=True)
    summaries.write(view)  # nothing new: nothing written again
    summaries.close()
    tags = read_tags(str(tmp_path / "controller"))
    for name in ("reward", "baseline", "entropy", "loss", "skip_rate"):
        assert tags[f"controller/{name}"] == 3
    assert tags["trial/score"] == 5 and tags["trial/best_score"] == 5 and tags["trial/skip_rate"] == 6
    assert tags["decisions/layers[0].num_filters"] == 1
    assert "_hparams_/session_start_info" in read_tags(str(tmp_path / "0" / "execution0"))
    # A new process (a resumed search) continues after what was written.
    view.history.append({**view.history[-1], "step": 3})
    again = ControllerSummaries(str(tmp_path), samples=50)
    again.write(view)
    again.close()
    assert read_tags(str(tmp_path / "controller"))["controller/reward"] == 4


def test_every_space_draws_and_describes_its_architecture(tmp_path):
    for name, options in (("enas-macro", {"num_layers": 4, "filters": 4}), ("enas-micro", {"num_nodes": 3, "filters": 4})):
        recipe = recipes.get(name)
        space = recipe.make_space((8, 8, 1), 3, options)
        architecture = recipe.architecture(space, space.decode(space.random_encoding(1)))
        graphs = recipe.graphs(space, architecture)
        assert len(graphs) == (2 if name == "enas-micro" else 1)
        for _, nodes in graphs:
            assert all(all(0 <= j < k for j in node["inputs"]) for k, node in enumerate(nodes))
        width, height = png_size(plots.plot_architecture(graphs, str(tmp_path / f"{name}.png")))
        assert width > 200 and height > 200
    with pytest.raises(ProjectError, match="'resnet'"):
        recipes.get("resnet")


def test_progress_line_reports_eta_and_stops_at_the_time_budget():
    stream = io.StringIO()
    progress = ProgressLine(total=10, unit="epochs", stream=stream)
    progress.start -= 20.0  # as if 20 s had passed
    progress.update(4, note="trials 2", force=True)
    line = stream.getvalue().strip()
    assert "4/10 epochs" in line and "elapsed 0:20" in line and "ETA 0:30" in line and line.endswith("trials 2")
    monitor = SearchMonitor(max_minutes=0.5, stream=io.StringIO())
    assert not monitor.time_up()
    monitor.deadline -= 31.0
    monitor.progress.start -= 31.0
    assert monitor.time_up()
    assert monitor.progress.eta(0) == pytest.approx(0.0, abs=1.0)
    on_the_clock = ProgressLine(total=20, unit="epochs", time_limit=600.0, stream=io.StringIO())
    on_the_clock.start -= 450.0
    line = on_the_clock.render(8)  # 8 of at most 20 epochs, three quarters of the time spent
    assert "8 of at most 20 epochs" in line and "[###############-----]" in line and "ETA 2:30" in line


def test_time_budget_stops_a_search_between_trials(tmp_path):
    import keras

    from keras_rlnas import RLSearch
    from keras_rlnas.reporting.monitor import monitored

    def build(hp):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(hp.Choice("units", [2, 4]), activation="relu"),
                                  keras.layers.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    stream = io.StringIO()
    tuner = monitored(RLSearch)(build, objective="val_accuracy", max_trials=5, seed=0, directory=str(tmp_path))
    monitor = SearchMonitor(total=5, max_minutes=1.0, view_fn=lambda: controller_view(tuner), stream=stream)
    monitor.deadline = monitor.progress.start  # the budget is spent as soon as the first trial ends
    tuner.monitor = monitor
    x = np.random.default_rng(0).standard_normal((16, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    tuner.search(x, y, validation_data=(x, y), epochs=1, verbose=0, callbacks=[monitor.epoch_callback()])
    assert len(tuner.oracle.trials) == 1
    assert "1 of at most 5 epochs" in stream.getvalue() and "trials 1, best val_accuracy" in stream.getvalue()
    view = controller_view(tuner)
    assert [t.trial_id for t in view.trials] == ["0"] and view.controller is tuner.oracle.controller


def test_controller_view_asks_the_tuner_first_and_knows_plain_tuners():
    view, _ = make_view(num_trials=2)

    class ShowsItself:
        def controller_view(self):
            return view

    assert controller_view(ShowsItself()) is view

    class Objective:
        name = "val_loss"

    class PlainOracle:
        trials = {"10": "third", "2": "second", "1": "first"}
        objective = Objective()

    class PlainTuner:
        oracle = PlainOracle()

    plain = controller_view(PlainTuner())
    assert plain.trials == ["first", "second", "third"] and plain.objective == "val_loss"
    assert plain.history == () and plain.controller is None

    class OracleShowsItself(PlainOracle):
        def controller_view(self):
            return view

    class TunerOfAControllerOracle:
        oracle = OracleShowsItself()

    assert controller_view(TunerOfAControllerOracle()) is view


def test_epoch_callback_reports_every_epoch_end_and_survives_a_deep_copy():
    import copy

    from keras_rlnas.reporting.monitor import epoch_callback

    ends = []
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    callback = epoch_callback(lambda epoch, logs: ends.append((epoch, "loss" in logs)))
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=3, verbose=0, callbacks=[copy.deepcopy(callback)])
    assert ends == [(0, True), (1, True), (2, True)]
