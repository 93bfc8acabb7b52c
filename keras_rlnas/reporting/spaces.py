"""The search spaces the `keras-rlnas` command knows, and what each needs to search, draw and rebuild.

Every entry of `SPACES` turns `(input_shape, num_classes, options)` into a
HyperModel, makes its tuner, runs a budgeted search, describes the best
architecture as plain JSON, draws it, rebuilds it as a Keras model and
retrains it. Adding a space to the command is adding an entry here.
"""

import json
import os

from keras_rlnas.spaces import structured

VANILLA_DEFAULTS = dict(
    num_layers=4,
    filter_heights=[1, 3, 5],
    filter_widths=[1, 3, 5],
    num_filters=[8, 16, 32],
    strides=[1, 2],
    learning_rate=0.05,
    batch_size=64,
)
ENAS_MACRO_DEFAULTS = dict(num_layers=6, filters=16)
ENAS_MICRO_DEFAULTS = dict(num_cells=1, num_nodes=5, filters=16)


class ProjectError(Exception):
    """A project directory, its files or a command's arguments are not usable; the message says why."""


class ControllerView:
    """What reports and TensorBoard read from any tuner: trials, controller history, policy.

    Attributes:
        trials: the Keras Tuner trials, in trial-id order.
        objective: the objective's name, e.g. `"val_accuracy"`.
        history: one dict per controller step (`step`, `reward`, `baseline`,
            `entropy`, `loss`, and for `RLSearch` the batch's `rewards` and `trials`).
        controller, decision_map, hyperparameters: the policy and the space,
            or `None` when the tuner has no controller (then no heat map).
    """

    def __init__(self, trials, objective, history, controller=None, decision_map=None, hyperparameters=None):
        self.trials = trials
        self.objective = objective
        self.history = history
        self.controller = controller
        self.decision_map = decision_map
        self.hyperparameters = hyperparameters


def _merged(defaults, options):
    # A space's get_config() repeats the data shape, which comes from the data set here.
    options = {k: v for k, v in options.items() if k not in ("input_shape", "num_classes")}
    return {**defaults, **options}


def _sorted_trials(oracle):
    return [oracle.trials[k] for k in sorted(oracle.trials, key=lambda t: (len(t), t))]


class SpaceEntry:
    """One space of the command line. Subclasses fill in the space-specific steps."""

    name = ""
    defaults = {}
    budgets = ("epochs", "trials", "max_minutes")
    default_batch_size = 64
    default_epochs = 1
    default_retrain_epochs = 5

    def make_space(self, input_shape, num_classes, options):
        raise NotImplementedError

    def make_tuner(self, space, *, seed, directory, project_name, overwrite, max_trials, options):
        raise NotImplementedError

    def search(self, tuner, data, *, epochs, batch_size, monitor):
        raise NotImplementedError

    def view(self, tuner):
        raise NotImplementedError

    def architecture(self, space, values):
        """The architecture that hyperparameter `values` describe, as plain JSON."""
        raise NotImplementedError

    def graphs(self, space, architecture):
        """`[(title, nodes)]` to draw; a node is `{"label": str, "inputs": [earlier node indices]}`."""
        raise NotImplementedError

    def build(self, space, architecture):
        """The (uncompiled) Keras model of a JSON architecture."""
        raise NotImplementedError

    def retrain(self, tuner, space, values, *, dataset, epochs, batch_size, limit, validation_size, seed, callbacks, verbose, options):
        """Trains the architecture from scratch.

        Returns:
            `(model, test, overrides, info)`: the trained model, the test
            split (arrays or a dataset), the space options the retrained model
            differs in (e.g. wider `filters`), for its architecture JSON, and
            the `DatasetInfo` (whitening statistics for serving).
        """
        raise NotImplementedError


class VanillaEntry(SpaceEntry):
    """Zoph & Le's CNN space, searched by `RLSearch` with the paper's reward."""

    name = "vanilla"
    defaults = VANILLA_DEFAULTS

    def make_space(self, input_shape, num_classes, options):
        from keras_rlnas.spaces import VanillaNAS

        return VanillaNAS(tuple(input_shape), int(num_classes), **_merged(self.defaults, options))

    def make_tuner(self, space, *, seed, directory, project_name, overwrite, max_trials, options):
        from keras_rlnas.reporting.monitor import monitored
        from keras_rlnas.tuners import RLSearch

        return monitored(RLSearch)(
            space, objective="val_accuracy", reward="nas", max_trials=max_trials, seed=seed,
            directory=directory, project_name=project_name, overwrite=overwrite, **options,
        )

    def search(self, tuner, data, *, epochs, batch_size, monitor):
        (x, y), validation = data
        tuner.monitor = monitor
        callbacks = [monitor.epoch_callback()]
        if monitor.log_dir:
            import keras

            # Keras Tuner moves it to logs/<trial>/execution0 and adds the trial's hparams.
            callbacks.append(keras.callbacks.TensorBoard(monitor.log_dir, write_graph=False, profile_batch=0))
        tuner.search(x, y, validation_data=validation, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=callbacks)

    def view(self, tuner):
        oracle = tuner.oracle
        return ControllerView(
            _sorted_trials(oracle), oracle.objective.name, list(oracle.updates),
            oracle.controller, oracle.decision_map, oracle.hyperparameters,
        )

    def architecture(self, space, values):
        import keras_tuner

        hp = keras_tuner.HyperParameters()
        hp.values = dict(values)
        return {"layers": space.describe(hp)}

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

    def build(self, space, architecture):
        return space.build_model(architecture["layers"], compile=False)

    def retrain(self, tuner, space, values, *, dataset, epochs, batch_size, limit, validation_size, seed, callbacks, verbose, options):
        import keras

        from keras_rlnas import data

        if options:
            raise ProjectError(f"--space vanilla takes no retrain options, got {sorted(options)}.")
        train, validation, test, info = data.load(dataset, validation_size=validation_size, batch_size=batch_size, limit=limit, seed=seed)
        model = self.build(space, self.architecture(space, values))
        # The children's SGD with the learning rate annealed to zero; weight
        # decay stays in the layers' L2 terms.
        steps = max(1, epochs * max(int(train.cardinality()), 1))
        model.compile(
            optimizer=keras.optimizers.SGD(
                keras.optimizers.schedules.CosineDecay(space.learning_rate, steps),
                momentum=space.momentum, nesterov=space.nesterov,
            ),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        # shuffle=False: the pipeline reshuffles itself every epoch.
        model.fit(train, validation_data=validation, epochs=epochs, shuffle=False, verbose=verbose, callbacks=callbacks)
        return model, test, {}, info


class ENASEntry(SpaceEntry):
    """An ENAS space, searched by `ENASTuner` (one shared-weight supernet)."""

    budgets = ("epochs", "max_minutes")
    default_batch_size = 128
    default_epochs = 10
    micro = False

    def make_space(self, input_shape, num_classes, options):
        from keras_rlnas.spaces import ENASMacro, ENASMicro

        space_class = ENASMicro if self.micro else ENASMacro
        return space_class(tuple(input_shape), int(num_classes), **_merged(self.defaults, options))

    def _tuner_class(self):
        try:
            from keras_rlnas.tuners.enas import ENASTuner
        except ImportError as error:
            raise ProjectError(
                f"--space {self.name} needs keras_rlnas.tuners.enas.ENASTuner, which this "
                f"installation cannot import ({error}); use --space vanilla."
            ) from error
        return ENASTuner

    def make_tuner(self, space, *, seed, directory, project_name, overwrite, max_trials, options):
        tuner = self._tuner_class()(
            hypermodel=space, objective="val_accuracy", seed=seed, directory=directory,
            project_name=project_name, overwrite=overwrite, **{"verbose": 0, **options},
        )
        # The oracle would print Keras Tuner's trial table; the command has its progress line.
        tuner.oracle.verbose = 0
        return tuner

    def search(self, tuner, data, *, epochs, batch_size, monitor):
        (x, y), validation = data
        # `search(epochs=n)` runs until n epochs are done, so one epoch per
        # call lets the command report progress and stop between epochs.
        done = len(tuner.oracle.trials)
        for target in range(done + 1, epochs + 1):
            if monitor.time_up():
                break
            tuner.search(x, y, validation_data=validation, epochs=target, batch_size=batch_size)
            monitor.tick()
            monitor.after_trial(self.view(tuner), write_hparams=True)

    def view(self, tuner):
        history = list(getattr(tuner, "history", []))
        state_path = os.path.join(tuner.project_dir, "enas_state.json")
        if getattr(tuner, "supernet", None) is None and os.path.exists(state_path):
            # Not searched in this process: read the saved state instead.
            with open(state_path) as f:
                history = json.load(f).get("history", [])
            controller_path = os.path.join(tuner.project_dir, "controller.npz")
            if os.path.exists(controller_path) and not getattr(tuner, "_report_loaded", False):
                tuner.controller.load(controller_path)
                tuner._report_loaded = True
        steps = [{"step": entry.get("epoch", i), **entry} for i, entry in enumerate(history)]
        return ControllerView(
            _sorted_trials(tuner.oracle), tuner.oracle.objective.name, steps,
            tuner.controller, tuner.decision_map, tuner.hyperparameters,
        )

    def build(self, space, architecture):
        import numpy as np

        return space.build_child(np.asarray(architecture["encoding"], np.int32), compile=False)

    def retrain(self, tuner, space, values, *, dataset, epochs, batch_size, limit, validation_size, seed, callbacks, verbose, options):
        from keras_rlnas import data

        (x, y), validation, test, info = data.load_arrays(dataset, validation_size=validation_size, limit=limit)
        options = dict(options)
        filters = options.pop("filters", None)
        import keras_tuner

        hp = keras_tuner.HyperParameters()
        hp.values = dict(values)
        model = tuner.retrain(
            hp, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation,
            filters=filters, callbacks=callbacks, verbose=verbose, **options,
        )
        return model, test, {"filters": filters or space.filters}, info


class ENASMacroEntry(ENASEntry):
    name = "enas-macro"
    defaults = ENAS_MACRO_DEFAULTS

    def architecture(self, space, values):
        ops, skips = space.parse(space.encode(values))
        layers = [{"op": space.OPS[op], "skips": list(s)} for op, s in zip(ops, skips)]
        return {"encoding": space.encode(values).tolist(), "layers": layers}

    def graphs(self, space, architecture):
        nodes = [{"label": "stem conv 3x3", "inputs": []}]
        reductions = set(space.reduction_positions)
        for i, layer in enumerate(architecture["layers"]):
            label = layer["op"] + (", then reduce" if i in reductions else "")
            nodes.append({"label": label, "inputs": [i] + [j + 1 for j in layer["skips"]]})
        nodes.append({"label": "global pool, softmax", "inputs": [len(nodes) - 1]})
        return [("best architecture", nodes)]


class ENASMicroEntry(ENASEntry):
    name = "enas-micro"
    defaults = ENAS_MICRO_DEFAULTS
    micro = True

    def architecture(self, space, values):
        encoding = space.encode(values)
        cells = {}
        for group, nodes in space.parse(encoding).items():
            cells[group] = [
                {"inputs": [a, b], "ops": [space.OPS[op_a], space.OPS[op_b]]}
                for (a, op_a), (b, op_b) in nodes
            ]
        return {"encoding": encoding.tolist(), "cells": cells}

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


SPACES = {entry.name: entry for entry in (VanillaEntry(), ENASMacroEntry(), ENASMicroEntry())}


def get(name):
    """The registry entry of space `name`.

    Raises:
        ProjectError: naming the unknown space and the known ones.

    Example:

    >>> get("vanilla").default_batch_size
    64
    """
    if name not in SPACES:
        raise ProjectError(f"Unknown space {name!r}; expected one of {sorted(SPACES)}.")
    return SPACES[name]


def skip_rate(values):
    """Fraction of the `skip[j]` hyperparameters that are on in `values`, or `None` without any.

    Example:

    >>> skip_rate({"layers[1].skip[0]": True, "layers[2].skip[0]": False, "lr": 0.1})
    0.5
    """
    bits = []
    for name, value in values.items():
        parsed = structured.parse_name(name)
        if parsed and structured.skip_source(parsed[2]) is not None:
            bits.append(bool(value))
    return sum(bits) / len(bits) if bits else None
