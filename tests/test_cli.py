"""The `keras-rlnas` command: end to end in subprocesses on a tiny budget, and its errors."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from keras_rlnas import cli
from keras_rlnas.data import fashion_mnist

# TensorFlow's C++ runtime logs to stderr on import, before any Python code can stop it.
TF_LOG_LINE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the following instructions|WARNING:absl:)")

needs_fashion_mnist = pytest.mark.skipif(
    fashion_mnist.find_fashion_mnist() is None, reason="Fashion-MNIST IDX files are not installed"
)


ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}

# Runs commands one after the other in one interpreter, as the console script
# would run each: TensorFlow's import (seconds) is paid once, not per command.
DRIVER = """
import json, sys
from keras_rlnas.cli import main
for args in json.loads(sys.argv[1]):
    status = main(args)
    print(f"STATUS {args[0]} {status}", flush=True)
    if status:
        sys.exit(status)
"""


def run(*args, timeout=240):
    """Runs the command as a user would, through `python -m keras_rlnas`."""
    return subprocess.run([sys.executable, "-m", "keras_rlnas", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def run_commands(commands, timeout=400):
    return subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def own_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip() and not TF_LOG_LINE.match(line)]


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@needs_fashion_mnist
def test_search_report_retrain_export_end_to_end(tmp_path):
    directory = str(tmp_path / "run")
    result = run_commands([
        ["search", "--space", "vanilla", "--dataset", "fashion_mnist", "--directory", directory, "--trials", "2",
         "--epochs", "1", "--limit", "200", "--layers", "2", "--batch-size", "32"],
        ["report", directory],
        ["retrain", directory, "--epochs", "1"],
        ["export", directory, "--format", "saved_model"],
    ])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout
    assert [line for line in out.splitlines() if line.startswith("STATUS")] == [
        "STATUS search 0", "STATUS report 0", "STATUS retrain 0", "STATUS export 0"]
    assert "Traceback" not in result.stderr

    # search: progress line on stderr, run.json, trials, TensorBoard logs.
    assert "Search done" in out and re.search(r"2/2 epochs .*ETA", result.stderr)
    run_file = json.loads(open(os.path.join(directory, "run.json")).read())
    assert run_file["space"] == "vanilla" and run_file["dataset"] == "fashion_mnist"
    assert run_file["data"]["limit"] == 200 and run_file["dataset_info"]["input_shape"] == [28, 28, 1]
    assert sorted(d for d in os.listdir(os.path.join(directory, "search")) if d.startswith("trial_")) == ["trial_0", "trial_1"]
    logs = os.listdir(os.path.join(directory, "logs"))
    assert "controller" in logs and "0" in logs  # ours beside Keras Tuner's per-trial logs

    # report: the table on stdout, real PNGs.
    assert "trials: 2 (2 completed, 0 failed)" in out and "| trial | status |" in out
    for name in ("controller.png", "best_so_far.png", "decisions.png", "architecture.png"):
        width, height = png_size(os.path.join(directory, "report", name))
        assert width > 200 and height > 150

    # retrain: test accuracy printed and recorded.
    accuracy = float(re.search(r"Test accuracy: ([0-9.]+)", out).group(1))
    facts = json.loads(open(os.path.join(directory, "best", "retrain.json")).read())
    assert facts["test_accuracy"] == pytest.approx(accuracy, abs=1e-4) and facts["epochs"] == 1

    # export: checked by the command itself, and here again.
    assert "predictions match" in out
    saved_model = os.path.join(directory, "export", "saved_model")
    architecture = json.loads(open(os.path.join(directory, "export", "architecture.json")).read())
    assert architecture["space"] == "vanilla" and len(architecture["architecture"]["layers"]) == 2
    assert len(architecture["preprocessing"]["mean"]) == 1 and architecture["test_accuracy"] == facts["test_accuracy"]

    # What a user does with the export: serve it, rebuild it from the JSON.
    import keras
    import tensorflow as tf

    from keras_rlnas.export import build_from_architecture

    model = keras.models.load_model(os.path.join(directory, "best", "model.keras"))
    x = np.random.default_rng(1).standard_normal((5, 28, 28, 1)).astype("float32")
    loaded = tf.saved_model.load(saved_model)
    served = loaded.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(served, model.predict(x, verbose=0), atol=1e-5)
    rebuilt = build_from_architecture(os.path.join(directory, "export", "architecture.json"))
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)

    # The same command with a larger budget resumes: run.json keeps the first call's start and adds up both calls.
    assert cli.main(["search", "--space", "vanilla", "--dataset", "fashion_mnist", "--directory", directory,
                     "--trials", "3", "--epochs", "1", "--limit", "200", "--layers", "2", "--batch-size", "32"]) == 0
    resumed = json.loads(open(os.path.join(directory, "run.json")).read())
    first, second = resumed["calls"]
    assert resumed["started"] == run_file["started"] == first["started"] and resumed["search"]["max_trials"] == 3
    assert (first["done"], second["done"], second["max_trials"]) == (2, 3, 3) and first["seconds"] > 0
    assert resumed["search_seconds"] == pytest.approx(first["seconds"] + second["seconds"], abs=0.11)
    assert os.path.isdir(os.path.join(directory, "search", "trial_2"))


def test_usage_errors_answer_without_loading_tensorflow():
    code = ("import sys; from keras_rlnas.cli import main; status = main(['--bogus']); "
            "print(status, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=ENV)
    assert result.stdout.split() == ["2", "False", "False"], result.stdout + result.stderr
    assert result.stderr.startswith("keras-rlnas: error:") and len(result.stderr.splitlines()) == 1
    module = subprocess.run([sys.executable, "-m", "keras_rlnas.cli", "search", "--bogus"], capture_output=True,
                            text=True, timeout=60, env=ENV)
    assert module.returncode == 2 and module.stderr.splitlines() == [module.stderr.strip()], module.stderr


def test_bad_space_from_the_shell_is_one_line_not_a_traceback(tmp_path):
    result = run("search", "--space", "resnet", "--dataset", "mnist", "--directory", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = own_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("keras-rlnas: error:") and "'resnet'" in lines[0]


@pytest.mark.parametrize(
    "args, expected, status",
    [
        (["search", "--space", "resnet", "--dataset", "mnist", "--directory", "d"], "invalid choice: 'resnet'", 2),
        (["search", "--dataset", "mnist"], "required: --directory", 2),
        (["search", "--dataset", "no_such_set", "--directory", "{tmp}/d"], "Unknown dataset 'no_such_set'", 1),
        (["search", "--dataset", "mnist", "--directory", "d", "--epochs", "0"], "must be > 0, got '0'", 2),
        (["search", "--dataset", "mnist", "--directory", "d", "--seed", "-1"], "--seed: must be >= 0, got '-1'", 2),
        (["search", "--dataset", "mnist", "--directory", "d", "--space-options", "[1]"], "expected a JSON object", 2),
        (["search", "--space", "enas-macro", "--dataset", "mnist", "--directory", "d", "--trials", "3"],
         "--trials applies to `search --space vanilla`, not 'enas-macro': ENAS records one trial per epoch", 2),
        (["search", "--space", "enas-micro", "--dataset", "mnist", "--directory", "d", "--update-every", "2"],
         "--update-every applies to `search --space vanilla`, not 'enas-micro'", 2),
        (["report", "{tmp}/missing"], "No such project directory", 1),
        (["retrain", "{tmp}"], "has no run.json", 1),
        (["export", "{tmp}", "--format", "onnx"], "invalid choice: 'onnx'", 2),
        (["retrain", "{tmp}", "--drop-path", "-0.1"], "must be >= 0.0, got '-0.1'", 2),
        (["retrain", "{tmp}", "--pad", "-2"], "must be >= 0, got '-2'", 2),
        (["launch"], "invalid choice: 'launch'", 2),
        (["search", "--dataset", "mnist", "--directory", "d", "--max-minutes", "nan"], "expected a finite number, got 'nan'", 2),
        (["retrain", "{tmp}", "--max-minutes", "inf"], "expected a finite number, got 'inf'", 2),
        (["search", "--dataset", "fashion_mnist", "--directory", "{tmp}/d", "--data-dir", "{tmp}/nowhere"],
         "argument --data-dir: no such directory", 2),
    ],
)
def test_bad_arguments_end_with_one_line(tmp_path, capsys, args, expected, status):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert cli.main(args) == status
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("keras-rlnas: error:") and expected in lines[0]


def test_resume_refuses_a_different_search_and_export_needs_a_retrain(tmp_path, capsys):
    cli.Project.write_run(str(tmp_path), {
        "space": "vanilla", "dataset": "fashion_mnist", "space_options": {}, "data": {"validation_size": 5000, "limit": 10},
    })
    assert cli.main(["search", "--dataset", "mnist", "--directory", str(tmp_path)]) == 2
    assert "holds a search with dataset 'fashion_mnist'" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path)]) == 1
    assert "has no retrained model" in capsys.readouterr().err
    assert cli.main(["retrain", str(tmp_path), "--drop-path", "0.3", "--max-minutes", "5"]) == 2
    assert ("--drop-path and --max-minutes apply to `retrain --space enas-macro|enas-micro`, not 'vanilla'"
            in capsys.readouterr().err)
    assert cli.main(["retrain", str(tmp_path), "--pad", "4", "--flip"]) == 2
    assert ("--pad and --flip apply to `retrain --space enas-macro|enas-micro`, not 'vanilla'"
            in capsys.readouterr().err)
    assert cli.main(["retrain", str(tmp_path), "--from-shared-weights"]) == 2
    assert ("--from-shared-weights applies to `retrain --space enas-macro|enas-micro`, not 'vanilla'"
            in capsys.readouterr().err)
    digits = str(tmp_path / "digits")
    cli.Project.write_run(digits, {
        "space": "enas-macro", "dataset": "mnist", "space_options": {}, "data": {"validation_size": 5000, "limit": 10},
    })
    assert cli.main(["retrain", digits, "--flip"]) == 2
    assert "--flip mirrors images, and 'mnist' holds digits" in capsys.readouterr().err
    # A resumed search keeps its seed: another one would make run.json describe a different search.
    cli.Project.write_run(digits, {
        "space": "vanilla", "dataset": "mnist", "space_options": cli.recipes.get("vanilla").defaults,
        "data": {"validation_size": 5000, "limit": None, "data_dir": None}, "search": {"seed": 1},
    })
    assert cli.main(["search", "--dataset", "mnist", "--directory", digits, "--seed", "2"]) == 2
    assert "holds a search with seed 1, not 2" in capsys.readouterr().err


@needs_fashion_mnist
def test_overwrite_deletes_nothing_until_the_new_search_is_checked(tmp_path, capsys):
    kept = {name: tmp_path / name / "kept.txt" for name in ("logs", "best", "export", "report")}
    for path in kept.values():
        path.parent.mkdir()
        path.write_text("an earlier result")
    # Not a project: its folders are not the command's to delete, whatever the flag; the bad value is named by its flag.
    assert cli.main(["search", "--dataset", "fashion_mnist", "--directory", str(tmp_path), "--overwrite",
                     "--limit", "100", "--validation-size", "20", "--space", "enas-macro", "--layers", "2"]) == 2
    assert "argument --layers: `num_layers` must be an integer >= 3, got 2" in capsys.readouterr().err
    cli.Project.write_run(str(tmp_path), {"space": "vanilla", "dataset": "fashion_mnist", "space_options": {},
                                          "data": {"validation_size": 5000, "limit": 10}})
    # A project, but a new search that fails its checks replaces nothing.
    assert cli.main(["search", "--dataset", "no_such_set", "--directory", str(tmp_path), "--overwrite"]) == 1
    assert all(path.exists() for path in kept.values())


def test_retrain_takes_a_completed_trial_never_one_left_running(tmp_path):
    import types

    import keras_tuner

    cli.Project.write_run(str(tmp_path), {"space": "vanilla", "dataset": "fashion_mnist", "space_options": {}})
    project = cli.Project(str(tmp_path))
    oracle = keras_tuner.Oracle(objective=keras_tuner.Objective("val_accuracy", "max"), max_trials=3)
    running = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id="0")  # a search stopped mid-trial
    oracle.trials["0"] = running
    tuner = types.SimpleNamespace(oracle=oracle)
    # Keras Tuner's best trials fill up with unfinished ones; retraining one would record a child never scored.
    assert oracle.get_best_trials(1) == [running]
    with pytest.raises(cli.ProjectError, match="has no completed trial yet"):
        project.best_values(tuner)
    done = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id="1", status="COMPLETED")
    done.score = 0.5
    oracle.trials["1"] = done
    assert project.best_values(tuner)[1] is done


@needs_fashion_mnist
def test_a_failed_search_is_the_error_shown_when_run_json_cannot_record_it(tmp_path, capsys, monkeypatch):
    recipe = cli.recipes.get("vanilla")

    def failing_search(*args, **kwargs):
        raise RuntimeError("the search failed here")

    def failing_record(self, **changes):
        raise OSError("no space left on device")

    monkeypatch.setattr(type(recipe), "search", failing_search)
    monkeypatch.setattr(cli.Project, "update_run", failing_record)
    status = cli.main(["search", "--dataset", "fashion_mnist", "--directory", str(tmp_path), "--limit", "100",
                       "--validation-size", "20", "--trials", "1", "--no-tensorboard", "--quiet"])
    err = capsys.readouterr().err
    assert status == 1
    assert "error: RuntimeError: the search failed here" in err
    assert "warning: this call is missing from" in err and "no space left on device" in err


def test_retrain_reads_the_data_where_the_search_did(monkeypatch):
    from keras_rlnas import data
    from keras_rlnas.cli.recipes import SPACES

    seen = []

    def loader(*args, **kwargs):
        seen.append(kwargs.get("data_dir"))
        raise RuntimeError("loaded")

    monkeypatch.setattr(data, "load", loader)
    monkeypatch.setattr(data, "load_arrays", loader)
    for name in ("vanilla", "enas-macro"):
        with pytest.raises(RuntimeError, match="loaded"):
            SPACES[name].retrain(None, None, {}, dataset="mnist", epochs=1, batch_size=8, limit=None, validation_size=10,
                                 seed=0, callbacks=[], verbose=0, options={}, data_dir="/data/tfds")
    assert seen == ["/data/tfds", "/data/tfds"]


def test_the_enas_recipe_searches_in_one_call_and_ends_with_one_final_choice(tmp_path):
    import io

    from keras_rlnas.cli.recipes import SPACES
    from keras_rlnas.reporting.monitor import SearchMonitor

    recipe = SPACES["enas-macro"]
    space = recipe.make_space((8, 8, 1), 3, {"num_layers": 3, "filters": 4})
    options = dict(controller_steps=1, controller_batch=2, derive_samples=2, batch_size=16, fine_tune_steps=2)
    tuner = recipe.make_tuner(space, seed=0, directory=str(tmp_path), project_name="p", overwrite=True,
                              max_trials=None, options=options)
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8, 8, 1), dtype="float32"), rng.integers(0, 3, 64)
    monitor = SearchMonitor(total=2, stream=io.StringIO())
    recipe.search(tuner, ((x, y), (x, y)), epochs=2, batch_size=16, monitor=monitor)
    assert recipe.done(tuner) == (2, "ENAS epochs")
    # The finalists are fine-tuned once, after the last epoch, not after every epoch.
    assert tuner.fine_tuned["epoch"] == 2
    assert len(tuner.oracle.trials) == 3
