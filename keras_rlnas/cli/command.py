"""The `keras-rlnas` command: search, report, retrain and export from the shell.

```
keras-rlnas search --space vanilla --dataset fashion_mnist --directory runs/fm --trials 20 --epochs 2
keras-rlnas report runs/fm
keras-rlnas retrain runs/fm --epochs 10
keras-rlnas export runs/fm --format saved_model
```

Everything a later command needs is kept in the project directory (see
`keras_rlnas.cli.project`); what differs between search spaces is in
`keras_rlnas.cli.recipes`. Mistakes in the arguments end with one
line on stderr and a non-zero exit status (2 for usage, 1 for the rest);
`--debug` shows the traceback instead.

The library (and with it TensorFlow) is imported inside the sub-commands, so
that usage errors and `--help` answer at once.
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import time

import numpy as np

from keras_rlnas import _checks as checks
from keras_rlnas.cli import recipes
from keras_rlnas.cli.errors import ProjectError, UsageError
from keras_rlnas.cli.project import PROJECT_NAME, Project, dataset_info_dict

PROG = "keras-rlnas"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse prints the usage block and exits; one line is easier to read and to test.
        raise UsageError(f"{message} (see `{self.prog} --help`)")


_positive_int = checks.command_line_number(int, 0, strict=True)
_count = checks.command_line_number(int, 0, strict=False)
_positive_float = checks.command_line_number(float, 0.0, strict=True)
_nonnegative_float = checks.command_line_number(float, 0.0, strict=False)


def _json_object(text):
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"filters\": 24}}', got {text!r}")
    return value


def build_parser():
    """The argument parser of `keras-rlnas` (sub-commands search, report, retrain, export)."""
    parser = _Parser(prog=PROG, description="Reinforcement-learning neural architecture search for Keras.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    search = commands.add_parser("search", help="search architectures on a data set",
                                 description="Search architectures; run it again to resume.")
    search.add_argument("--space", default="vanilla", choices=sorted(recipes.SPACES), help="search space (default vanilla)")
    search.add_argument("--dataset", required=True, help="tensorflow-datasets name, e.g. fashion_mnist, cifar10, mnist")
    search.add_argument("--directory", required=True, help="project directory (created; an existing search resumes)")
    budget = search.add_argument_group("budget (any combination; the search stops at the first reached)")
    budget.add_argument("--trials", type=_positive_int, help="children to train (vanilla; default 10 without --max-minutes)")
    budget.add_argument("--epochs", type=_positive_int, help="epochs per child (vanilla, default 1) or ENAS epochs (default 10)")
    budget.add_argument("--max-minutes", type=_positive_float, help="wall time; no new trial / ENAS epoch starts after it")
    data = search.add_argument_group("data")
    data.add_argument("--limit", type=_positive_int, help="use at most this many images of each split (quick runs)")
    data.add_argument("--validation-size", type=_positive_int, default=5000, help="training images held out for the reward (default 5000)")
    data.add_argument("--data-dir", help="tensorflow-datasets data directory")
    data.add_argument("--batch-size", type=_positive_int, help="minibatch size (vanilla 64, ENAS omega phase 32)")
    options = search.add_argument_group("space and tuner")
    options.add_argument("--layers", type=_positive_int,
                         help="layers (vanilla, enas-macro) or normal cells per stage (enas-micro)")
    options.add_argument("--update-every", type=_positive_int, help="vanilla: trials per controller update (default 4)")
    options.add_argument("--space-options", type=_json_object, default={}, help="JSON of the space's options, e.g. '{\"filters\": 24}'")
    options.add_argument("--tuner-options", type=_json_object, default={}, help="JSON of the tuner's options")
    options.add_argument("--seed", type=_count, default=1, help="seed of the controller and the children (default 1)")
    options.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming (deletes the old search and its logs, model, export and report)")
    options.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard logs")
    options.add_argument("--quiet", action="store_true", help="no progress line")

    report = commands.add_parser("report", help="summary table and PNG plots of a search")
    report.add_argument("directory")
    report.add_argument("--samples", type=_positive_int, default=500, help="architectures sampled for the decision heat map")

    retrain = commands.add_parser("retrain", help="train the best architecture from scratch and test it")
    retrain.add_argument("directory")
    retrain.add_argument("--epochs", type=_positive_int, help="training epochs (default 5; ENAS 10)")
    retrain.add_argument("--batch-size", type=_positive_int, help="minibatch size (default: ENAS 128, vanilla the search's)")
    retrain.add_argument("--limit", type=_count, help="images per split; 0 = all (default: the search's --limit)")
    retrain.add_argument("--filters", type=_positive_int, help="ENAS: channels of the final network (wider than the search's)")
    retrain.add_argument("--cutout", type=_positive_int, help="ENAS: side of the cutout square")
    retrain.add_argument("--pad", type=_count, help="ENAS: shift training images by a random crop after this much zero padding")
    retrain.add_argument("--flip", action="store_true", default=None, help="ENAS: flip training images left-right at random")
    retrain.add_argument("--drop-path", type=_nonnegative_float, help="ENAS micro: drop-path rate (default 0.4)")
    retrain.add_argument("--auxiliary-weight", type=_nonnegative_float, help="ENAS micro: auxiliary head loss weight (default 0.4)")
    retrain.add_argument("--max-minutes", type=_positive_float, help="ENAS: time budget; the epoch count (at most --epochs) and length are fitted to it")
    retrain.add_argument("--from-shared-weights", action="store_true", default=None,
                         help="ENAS: start from the supernet's weights for the child, not from scratch (needs the search's filters)")
    retrain.add_argument("--verbose", action="store_true", help="Keras' per-epoch lines instead of the progress line")

    export = commands.add_parser("export", help="write the retrained model as .keras or SavedModel")
    export.add_argument("directory")
    export.add_argument("--format", default="keras", choices=("keras", "saved_model"))
    export.add_argument("--output", help="target path (default DIR/export/model.keras or DIR/export/saved_model)")
    return parser


def _refuse_flags(args, recipe, command, flags):
    """Raises a `UsageError` naming the given `flags` (dest names) that `recipe`'s space does not take."""
    given = [f for f in flags if getattr(args, f) is not None and f not in getattr(recipe, f"{command}_flags")]
    if not given:
        return
    names = " and ".join("--" + f.replace("_", "-") for f in given)
    takers = sorted({name for f in given for name in recipes.accepting(f, command)})
    note = "; ".join(recipe.notes[f] for f in given if f in recipe.notes)
    raise UsageError(f"{names} {'applies' if len(given) == 1 else 'apply'} to `{command} --space "
                     f"{'|'.join(takers)}`, not {recipe.name!r}{': ' + note if note else ''}.")


# ------------------------------------------------------------------------ search
SEARCH_FLAGS = ("trials", "update_every")


def cmd_search(args):
    import keras

    from keras_rlnas import data
    from keras_rlnas.reporting.monitor import SearchMonitor
    from keras_rlnas.reporting.view import controller_view

    recipe = recipes.get(args.space)
    _refuse_flags(args, recipe, "search", SEARCH_FLAGS)
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        # Some data sets would quietly fall back to their usual place instead.
        raise UsageError(f"argument --data-dir: no such directory {args.data_dir!r}")
    space_options = dict(args.space_options)
    if args.layers is not None:
        space_options[recipe.layers_option] = args.layers
    space_options = {**recipe.defaults, **space_options}
    tuner_options = dict(args.tuner_options)
    if args.update_every is not None:
        tuner_options["update_every"] = args.update_every
    run = {
        "space": recipe.name,
        "dataset": args.dataset,
        "space_options": space_options,
        "data": {"validation_size": args.validation_size, "limit": args.limit, "data_dir": args.data_dir},
    }
    batch_size = args.batch_size or recipe.default_batch_size
    # What a resumed search must share with the one it continues (--epochs, --trials and --max-minutes may grow).
    same_search = {"seed": args.seed, "batch_size": batch_size, "tuner_options": tuner_options}
    overwrite = args.overwrite
    previous = os.path.join(args.directory, "run.json")
    old = {}
    if os.path.exists(previous) and not overwrite:
        old = Project(args.directory).run
        recorded = {**old.get("search", {}), **{key: old.get(key) for key in run}}
        for key, value in {**run, **same_search}.items():
            if key in recorded and recorded[key] != value:
                held, given = recorded[key], value
                if isinstance(held, dict) and isinstance(given, dict):  # name only the options that differ
                    differ = sorted(k for k in {**held, **given} if held.get(k) != given.get(k))
                    held, given = ({k: d.get(k) for k in differ} for d in (held, given))
                raise UsageError(
                    f"{args.directory!r} holds a search with {key} {held!r}, not {given!r}; "
                    "pass --overwrite to replace it or choose another --directory."
                )
    (x, y), validation, _, info = data.load_arrays(
        args.dataset, validation_size=args.validation_size, limit=args.limit, data_dir=args.data_dir
    )
    try:
        space = recipe.make_space(info.input_shape, info.num_classes, space_options)
    except ValueError as error:
        if args.layers is not None and f"`{recipe.layers_option}`" in str(error):
            raise UsageError(f"argument --layers: {error}") from None
        raise
    epochs, max_trials = recipe.budget(epochs=args.epochs, trials=args.trials, max_minutes=args.max_minutes)
    # `search` holds the budget the search was last asked to reach; `calls`, each command that worked on it.
    call = {"command": [PROG] + sys.argv[1:], "started": _now(), "epochs": epochs, "max_trials": max_trials,
            "max_minutes": args.max_minutes}
    run.update(
        dataset_info=dataset_info_dict(info),
        search={"seed": args.seed, "max_trials": max_trials, "epochs": epochs, "max_minutes": args.max_minutes,
                "batch_size": batch_size, "tuner_options": tuner_options},
        command=old.get("command", call["command"]),
        started=old.get("started", call["started"]),
        search_seconds=old.get("search_seconds", 0.0),
        calls=old.get("calls", []) + [call],
    )
    keras.utils.set_random_seed(args.seed)
    tuner = recipe.make_tuner(space, seed=args.seed, directory=args.directory, project_name=PROJECT_NAME,
                              overwrite=overwrite, max_trials=max_trials, options=tuner_options)
    if overwrite and os.path.exists(previous):
        # Keras Tuner has cleared its own project; the command's outputs of the old search go with it,
        # once every argument of the new one has been checked.
        for name in ("logs", "best", "export", "report"):
            shutil.rmtree(os.path.join(args.directory, name), ignore_errors=True)
    Project.write_run(args.directory, run)
    done, done_unit = recipe.done(tuner)
    monitor = SearchMonitor(
        total=recipe.epochs_left(epochs=epochs, max_trials=max_trials, done=done), unit="epochs",
        max_minutes=args.max_minutes,
        log_dir=None if args.no_tensorboard else os.path.join(args.directory, "logs"),
        view_fn=lambda: controller_view(tuner), stream=open(os.devnull, "w") if args.quiet else None,
    )
    print(f"Searching {recipe.name} on {info.name} ({info.num_train} training, {info.num_validation} validation "
          f"images from {info.source}); {done} {done_unit} already in {args.directory!r}.", flush=True)
    start = time.time()
    try:
        recipe.search(tuner, ((x, y), validation), epochs=epochs, batch_size=batch_size, monitor=monitor)
        call["done"] = recipe.done(tuner)[0]
    except BaseException:
        # Also when the search fails or is interrupted: a resumed run's total counts every call's time.
        # The search's own error is the one the user sees, whatever happens to the record.
        monitor.close()
        _record_call(args.directory, run, call, start, after_failure=True)
        raise
    monitor.close()
    seconds = _record_call(args.directory, run, call, start)
    view = controller_view(tuner)
    scores = [t.score for t in view.trials if t.score is not None]
    best = f"best {view.objective} {max(scores):.4f}" if scores else "no completed trial"
    print(f"Search done in {seconds / 60:.1f} min: {len(view.trials)} trials, {best}.")
    print(f"Next: {PROG} report {args.directory}  |  {PROG} retrain {args.directory}  |  "
          f"tensorboard --logdir {os.path.join(args.directory, 'logs')}")


# ------------------------------------------------------------------------ report
def cmd_report(args):
    from keras_rlnas.reporting.report import format_table, write_report
    from keras_rlnas.reporting.view import controller_view

    project = Project(args.directory)
    recipe = project.recipe
    tuner = project.open_tuner()
    view = controller_view(tuner)
    graphs = None
    if any(t.score is not None for t in view.trials):
        values, _ = project.best_values(tuner)
        graphs = recipe.graphs(project.space, recipe.architecture(project.space, values))
    extra = {"space": project.run["space"], "dataset": project.run["dataset"]}
    retrained = project.retrain_info()
    if retrained:
        extra["retrained"] = (f"test accuracy {retrained['test_accuracy']:.4f} after {retrained['epochs']} epochs "
                              f"({retrained['params']:,} parameters)")
    result = write_report(view, project.path("report"), graphs=graphs, extra=extra, samples=args.samples)
    print("\n".join(result["summary"]))
    print()
    print(format_table(result["rows"], view.objective, limit=10))
    print()
    print("Wrote " + ", ".join(os.path.relpath(p, args.directory) for p in result["files"]) + f" in {args.directory}")


# ----------------------------------------------------------------------- retrain
RETRAIN_FLAGS = ("filters", "cutout", "pad", "flip", "drop_path", "auxiliary_weight", "max_minutes", "from_shared_weights")


def cmd_retrain(args):
    import keras

    from keras_rlnas.data import NO_FLIP_DATASETS
    from keras_rlnas.export import architecture_record, save_architecture
    from keras_rlnas.reporting.monitor import ProgressLine, epoch_callback

    project = Project(args.directory)
    recipe, run = project.recipe, project.run
    _refuse_flags(args, recipe, "retrain", RETRAIN_FLAGS)
    if args.flip and run["dataset"] in NO_FLIP_DATASETS:
        raise UsageError(f"--flip mirrors images, and {run['dataset']!r} holds digits or characters a mirror changes.")
    options = {f: getattr(args, f) for f in RETRAIN_FLAGS if getattr(args, f) is not None}
    if "max_minutes" in options:
        options["time_budget"] = options.pop("max_minutes") * 60
    tuner = project.open_tuner()
    values, trial = project.best_values(tuner)
    epochs = args.epochs or recipe.default_retrain_epochs
    batch_size = args.batch_size or recipe.retrain_batch_size or run["search"]["batch_size"]
    limit = run["data"]["limit"] if args.limit is None else (args.limit or None)
    seed = run["search"]["seed"]
    keras.utils.set_random_seed(seed)
    # Under --max-minutes, `epochs` is a cap: the count reads "of at most".
    progress = ProgressLine(total=epochs, unit="epochs", label="retrain", time_limit=options.get("time_budget"))
    callbacks = [] if args.verbose else [epoch_callback(
        lambda epoch, logs: progress.update(epoch + 1, note=_metrics_note(logs), force=True))]
    start = time.time()
    try:
        model, test, overrides, data_info = recipe.retrain(
            tuner, project.space, values, dataset=run["dataset"], epochs=epochs, batch_size=batch_size,
            limit=limit, validation_size=run["data"]["validation_size"], seed=seed, callbacks=callbacks,
            verbose=2 if args.verbose else 0, options=options, data_dir=run["data"].get("data_dir"),
        )
    finally:
        progress.close()
    seconds = time.time() - start
    epochs = len(model.history.epoch)  # fewer than asked when --max-minutes ran out
    if isinstance(test, tuple):
        test_loss, test_accuracy = model.evaluate(*test, batch_size=batch_size, verbose=0)[:2]
    else:
        test_loss, test_accuracy = model.evaluate(test, verbose=0)[:2]
    best_dir = project.path("best")
    os.makedirs(best_dir, exist_ok=True)
    model.save(os.path.join(best_dir, "model.keras"))
    info = run["dataset_info"]
    # Served models need the same whitening as training: (pixels - mean) / std, pixels 0-255.
    preprocessing = {"mean": list(data_info.mean), "std": list(data_info.std), "pixel_range": [0, 255]}
    record = architecture_record(
        recipe.name, project.space, {**run["space_options"], **overrides}, values, info["input_shape"],
        info["num_classes"], dataset=run["dataset"], preprocessing=preprocessing, search_trial=trial.trial_id,
        search_score=trial.score, test_accuracy=float(test_accuracy),
    )
    save_architecture(record, os.path.join(best_dir, "architecture.json"))
    facts = {"trial": trial.trial_id, "search_score": trial.score, "epochs": epochs, "batch_size": batch_size,
             "limit": limit, "from_shared_weights": bool(args.from_shared_weights),
             "seconds": round(seconds, 1), "params": int(model.count_params()),
             "test_accuracy": float(test_accuracy), "test_loss": float(test_loss), "preprocessing": preprocessing}
    with open(os.path.join(best_dir, "retrain.json"), "w") as f:
        json.dump(facts, f, indent=2)
    print(f"Retrained trial {trial.trial_id} ({facts['params']:,} parameters) for {epochs} epochs in "
          f"{seconds / 60:.1f} min. Test accuracy: {test_accuracy:.4f} (loss {test_loss:.4f}).")
    print(f"Wrote {os.path.join(best_dir, 'model.keras')} and architecture.json.")


def _record_call(directory, run, call, start, after_failure=False):
    """Adds the call that ends now to `run.json`'s `calls` and total; returns its seconds.

    `after_failure`: a record that cannot be written is only warned about, so the failure stays the error raised.
    """
    seconds = time.time() - start
    call.update(seconds=round(seconds, 1), finished=_now())
    try:
        Project(directory).update_run(finished=call["finished"], search_seconds=round(run["search_seconds"] + seconds, 1),
                                      calls=run["calls"])
    except Exception as error:
        if not after_failure:
            raise
        print(f"{PROG}: warning: this call is missing from {os.path.join(directory, 'run.json')}: {_one_line(error)}",
              file=sys.stderr)
    return seconds


def _now():
    return datetime.datetime.now().isoformat(timespec="seconds")


def _metrics_note(logs):
    """The progress line's metrics; a micro child with its auxiliary head names them after its output.

    Example:

    >>> _metrics_note({"loss": 0.5, "probabilities_accuracy": 0.8, "auxiliary_loss": 0.7})
    'loss 0.5000, accuracy 0.8000'
    """
    shown = {k.replace("probabilities_accuracy", "accuracy"): v for k, v in logs.items()}
    return ", ".join(f"{k} {v:.4f}" for k, v in shown.items() if k in ("loss", "accuracy", "val_accuracy"))


# ------------------------------------------------------------------------ export
def cmd_export(args):
    import keras

    from keras_rlnas.export import export_model, max_prediction_difference

    project = Project(args.directory)
    source = project.path("best", "model.keras")
    if not os.path.exists(source):
        raise ProjectError(f"{args.directory!r} has no retrained model; run `{PROG} retrain {args.directory}` first.")
    model = keras.models.load_model(source)
    default = "model.keras" if args.format == "keras" else "saved_model"
    target = args.output or project.path("export", default)
    export_model(model, target, args.format)
    architecture = os.path.join(os.path.dirname(os.path.abspath(target)), "architecture.json")
    shutil.copyfile(project.path("best", "architecture.json"), architecture)
    # Whitened images are roughly standard normal; any such batch checks the round trip.
    x = np.random.default_rng(0).standard_normal((8, *model.input_shape[1:])).astype("float32")
    difference = max_prediction_difference(model, target, args.format, x)
    if difference > 1e-4:
        raise ProjectError(f"The exported model at {target!r} predicts differently (max difference {difference:.2e}).")
    print(f"Exported {args.format} to {target} (predictions match, max difference {difference:.1e}); "
          f"architecture: {architecture}")


COMMANDS = {"search": cmd_search, "report": cmd_report, "retrain": cmd_retrain, "export": cmd_export}


def _one_line(error):
    text = " ".join(str(error).split()) or type(error).__name__
    known = (UsageError, ProjectError, ValueError, FileNotFoundError, ImportError)
    return text if isinstance(error, known) else f"{type(error).__name__}: {text}"


def main(argv=None):
    """Runs `keras-rlnas` with `argv` (default `sys.argv[1:]`); returns the exit status.

    Example:

    ```python
    from keras_rlnas.cli import main
    main(["report", "runs/fashion"])
    ```
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("KERAS_RLNAS_DEBUG")
    try:
        args = build_parser().parse_args(argv)
        COMMANDS[args.command](args)
        return 0
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; the same command resumes a search from its last finished trial.", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1


if __name__ == "__main__":
    sys.exit(main())
