"""The search spaces the `keras-rlnas` command knows, and what it does with each.

A `Recipe` turns `(input_shape, num_classes, options)` into a HyperModel,
makes its tuner, sizes and runs a budgeted search, describes and draws the
best architecture and retrains it. It also says which optional flags of the
command apply to its space. Adding a space to the command is adding a recipe
to `SPACES`; the command itself knows no space by name.

The recipes import the library inside their methods: the command's parser
reads this registry, and a usage error must not wait for TensorFlow to load.
"""

from keras_rlnas.cli.errors import ProjectError

DEFAULT_TRIALS = 10
# ENAS epochs when only --max-minutes bounds the search.
UNBOUNDED_EPOCHS = 10**6


class Recipe:
    """One search space of the command. Subclasses fill in the space-specific steps.

    Attributes:
        name: the `--space` value.
        defaults: space options the command uses unless told otherwise (sized for a CPU).
        layers_option: the space option that `--layers` sets.
        search_flags, retrain_flags: the optional flags (`dest` names) of
            `search` and `retrain` that apply to this space.
        notes: `{flag: why}`, said when a flag of another space is given.
    """

    name = ""
    defaults = {}
    layers_option = "num_layers"
    search_flags = ()
    retrain_flags = ()
    notes = {}
    default_batch_size = 64
    # None: retrain with the search's minibatch size.
    retrain_batch_size = None
    default_epochs = 1
    default_retrain_epochs = 5

    def make_space(self, input_shape, num_classes, options):
        """The HyperModel, from the command's defaults and `options` (a space's `get_config()` works too)."""
        from keras_rlnas import export

        return export.make_space(self.name, input_shape, num_classes, {**self.defaults, **options})

    def make_tuner(self, space, *, seed, directory, project_name, overwrite, max_trials, options):
        raise NotImplementedError

    def budget(self, *, epochs, trials, max_minutes):
        """`(epochs, max_trials)` passed to the tuner, from the flags (each `None` when not given)."""
        return epochs or self.default_epochs, trials or (None if max_minutes else DEFAULT_TRIALS)

    def done(self, tuner):
        """`(count, unit)` of the work a resumed search already holds (a trial left running is trained again)."""
        ended = [trial for trial in tuner.oracle.trials.values() if trial.status != "RUNNING"]
        return len(ended), "trials"

    def epochs_left(self, *, epochs, max_trials, done):
        """Epochs the search still has to train after `done` (see `done`), or `None` when only time bounds it."""
        raise NotImplementedError

    def search(self, tuner, data, *, epochs, batch_size, monitor):
        """Searches on `data = ((x, y), (x_val, y_val))`, reporting to a `SearchMonitor`."""
        raise NotImplementedError

    def architecture(self, space, values):
        """The architecture that hyperparameter `values` describe, as plain JSON."""
        from keras_rlnas import export

        return export.describe_architecture(space, values)

    def graphs(self, space, architecture):
        """`[(title, nodes)]` to draw; a node is `{"label": str, "inputs": [earlier node indices]}`."""
        raise NotImplementedError

    def build(self, space, architecture):
        """The (uncompiled) Keras model of a JSON architecture."""
        from keras_rlnas import export

        return export.build_architecture(space, architecture)

    def retrain(self, tuner, space, values, *, dataset, epochs, batch_size, limit, validation_size, seed, callbacks, verbose,
                options, data_dir=None):
        """Trains the architecture from scratch, on the data the search read (`data_dir`: its TFDS directory).

        Returns:
            `(model, test, overrides, info)`: the trained model, the test
            split (arrays or a dataset), the space options the retrained model
            differs in (e.g. wider `filters`), for its architecture JSON, and
            the `DatasetInfo` (whitening statistics for serving).
        """
        raise NotImplementedError


class VanillaRecipe(Recipe):
    """Zoph & Le's CNN space, searched by `RLSearch` with the paper's reward."""

    name = "vanilla"
    defaults = dict(
        num_layers=4,
        filter_heights=[1, 3, 5],
        filter_widths=[1, 3, 5],
        num_filters=[8, 16, 32],
        strides=[1, 2],
        learning_rate=0.05,
        batch_size=64,
    )
    search_flags = ("trials", "update_every")

    def make_tuner(self, space, *, seed, directory, project_name, overwrite, max_trials, options):
        from keras_rlnas.reporting.monitor import monitored
        from keras_rlnas.tuners import RLSearch

        return monitored(RLSearch)(
            space, objective="val_accuracy", reward="nas", max_trials=max_trials, seed=seed,
            directory=directory, project_name=project_name, overwrite=overwrite, **options,
        )

    def epochs_left(self, *, epochs, max_trials, done):
        return None if max_trials is None else max(max_trials - done, 0) * epochs

    def search(self, tuner, data, *, epochs, batch_size, monitor):
        import keras

        (x, y), validation = data
        tuner.monitor = monitor
        callbacks = [monitor.epoch_callback()]
        if monitor.log_dir:
            # Keras Tuner moves it to logs/<trial>/execution0 and adds the trial's hparams.
            callbacks.append(keras.callbacks.TensorBoard(monitor.log_dir, write_graph=False, profile_batch=0))
        tuner.search(x, y, validation_data=validation, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=callbacks)

    def graphs(self, space, architecture):
        layers = architecture["layers"]
        nodes = [{"label": "image", "inputs": []}]
        consumed = set()
        for layer in layers:
            consumed.update(layer["inputs"])
            strides = "x".join(str(s) for s in layer["strides"])
            label = f"conv {layer['filter_height']}x{layer['filter_width']}, {layer['num_filters']} filters"
            if strides != "1x1":
                label += f", stride {strides}"
            nodes.append({"label": label, "inputs": [j + 1 for j in layer["inputs"]] or [0]})
        loose = [i + 1 for i in range(len(layers)) if i not in consumed]
        nodes.append({"label": "global pool, softmax", "inputs": loose})
        return [("best architecture", nodes)]

    def retrain(self, tuner, space, values, *, dataset, epochs, batch_size, limit, validation_size, seed, callbacks, verbose,
                options, data_dir=None):
        from keras_rlnas import data, retrain

        train, validation, test, info = data.load(
            dataset, validation_size=validation_size, batch_size=batch_size, limit=limit, seed=seed, data_dir=data_dir
        )
        model = retrain.retrain(
            space, values, train, epochs=epochs, validation_data=validation, callbacks=callbacks, seed=seed, verbose=verbose
        )
        return model, test, {}, info


class ENASRecipe(Recipe):
    """An ENAS space, searched by `ENASTuner` (one shared-weight supernet)."""

    retrain_flags = ("filters", "cutout", "pad", "flip", "drop_path", "auxiliary_weight", "max_minutes",
                     "from_shared_weights")
    notes = {"trials": "ENAS records one trial per epoch; use --epochs"}
    default_batch_size = 32
    retrain_batch_size = 128
    default_epochs = 10
    default_retrain_epochs = 10

    def make_tuner(self, space, *, seed, directory, project_name, overwrite, max_trials, options):
        from keras_rlnas.tuners import ENASTuner

        tuner = ENASTuner(
            hypermodel=space, objective="val_accuracy", seed=seed, directory=directory,
            project_name=project_name, overwrite=overwrite, **{"verbose": 0, **options},
        )
        # The oracle would print Keras Tuner's trial table; the command has its progress line.
        tuner.oracle.verbose = 0
        return tuner

    def budget(self, *, epochs, trials, max_minutes):
        _, max_trials = super().budget(epochs=epochs, trials=trials, max_minutes=max_minutes)
        return epochs or (UNBOUNDED_EPOCHS if max_minutes else self.default_epochs), max_trials

    def done(self, tuner):
        # The final-choice stage records trials of its own: epochs are the count.
        return tuner.epochs_done, "ENAS epochs"

    def epochs_left(self, *, epochs, max_trials, done):
        return None if epochs >= UNBOUNDED_EPOCHS else max(epochs - done, 0)

    def search(self, tuner, data, *, epochs, batch_size, monitor):
        import keras

        from keras_rlnas.reporting.view import controller_view

        (x, y), validation = data

        class Report(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                monitor.tick()
                monitor.after_trial(controller_view(tuner), write_hparams=True)
                # Ends the search after this epoch, with its final-choice stage if asked for.
                self.model.stop_training = monitor.time_up()

        # One call: the final-choice stage (`fine_tune_steps` / `finalist_epochs`) runs once, at the end.
        if tuner.epochs_done < epochs and not monitor.time_up():
            tuner.search(x, y, validation_data=validation, epochs=epochs, batch_size=batch_size, callbacks=[Report()])
            monitor.after_trial(controller_view(tuner), write_hparams=True)  # The stage's trial, if any.

    def retrain(self, tuner, space, values, *, dataset, epochs, batch_size, limit, validation_size, seed, callbacks, verbose,
                options, data_dir=None):
        import keras_tuner

        from keras_rlnas import data

        (x, y), validation, test, info = data.load_arrays(
            dataset, validation_size=validation_size, limit=limit, data_dir=data_dir
        )
        options = dict(options)
        filters = options.pop("filters", None)
        hp = keras_tuner.HyperParameters()
        hp.values = dict(values)
        model = tuner.retrain(
            hp, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation,
            filters=filters, callbacks=callbacks, verbose=verbose, **options,
        )
        return model, test, {"filters": filters or space.filters}, info


class ENASMacroRecipe(ENASRecipe):
    name = "enas-macro"
    defaults = dict(num_layers=6, filters=16)

    def graphs(self, space, architecture):
        stride = f", stride {space.stem_strides}" if space.stem_strides != 1 else ""
        nodes = [{"label": f"stem conv 3x3{stride}", "inputs": []}]
        reductions = set(space.reduction_positions)
        for i, layer in enumerate(architecture["layers"]):
            label = layer["op"] + (", then reduce" if i in reductions else "")
            nodes.append({"label": label, "inputs": [i] + [j + 1 for j in layer["skips"]]})
        nodes.append({"label": "global pool, softmax", "inputs": [len(nodes) - 1]})
        return [("best architecture", nodes)]


class ENASMicroRecipe(ENASRecipe):
    name = "enas-micro"
    defaults = dict(num_cells=1, num_nodes=5, filters=16)
    layers_option = "num_cells"

    def graphs(self, space, architecture):
        graphs = []
        for group, nodes in architecture["cells"].items():
            drawn = [{"label": "n0: output of cell k-2", "inputs": []}, {"label": "n1: output of cell k-1", "inputs": []}]
            read = set()
            for node in nodes:
                read.update(node["inputs"])
                label = f"n{len(drawn)}: {node['ops'][0]}(n{node['inputs'][0]}) + {node['ops'][1]}(n{node['inputs'][1]})"
                drawn.append({"label": label, "inputs": sorted(set(node["inputs"]))})
            loose = [i for i in range(2, len(drawn)) if i not in read]
            drawn.append({"label": "concat, 1x1 conv", "inputs": loose})
            graphs.append((group.replace("_", " "), drawn))
        return graphs


SPACES = {recipe.name: recipe for recipe in (VanillaRecipe(), ENASMacroRecipe(), ENASMicroRecipe())}


def get(name):
    """The recipe of space `name`.

    Raises:
        ProjectError: naming the unknown space and the known ones.

    Example:

    >>> get("vanilla").default_batch_size
    64
    """
    if name not in SPACES:
        raise ProjectError(f"Unknown space {name!r}; expected one of {sorted(SPACES)}.")
    return SPACES[name]


def accepting(flag, command):
    """Names of the spaces whose recipes take optional flag `flag` (a `dest`) of `command`.

    Example:

    >>> accepting("update_every", "search")
    ['vanilla']
    """
    return [name for name, recipe in SPACES.items() if flag in getattr(recipe, f"{command}_flags")]
