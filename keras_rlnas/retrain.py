"""Final training: a found architecture trained anew, for every search space.

A search ranks architectures with short or shared-weight training; the one it
keeps is then trained anew, from a random initialisation or, with
`inherit_from`, from the weights the search trained (weight inheritance, as
Once-for-All and BigNAS start their children). Every space gets one cosine
learning-rate cycle over all epochs and an optional time budget (a timed
probe picks how many epochs, and how long, fill it; the cycle then follows
the clock to the deadline, where training stops), and training arrays can
be shifted, flipped and cut out. The ENAS spaces add the
final-training options of Pham et al. (2018): a wider network (`filters`)
and, in the micro space, scheduled drop-path and an auxiliary head.

Example:

>>> import numpy as np
>>> from keras_rlnas.spaces import ENASMacro
>>> space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4)
>>> x, y = np.random.rand(16, 8, 8, 1).astype("float32"), np.arange(16) % 3
>>> values = space.decode(space.random_encoding(0))
>>> model = retrain(space, values, x, y, epochs=1, batch_size=8, filters=6)
>>> model.predict(x[:2], verbose=0).shape
(2, 3)
"""

import time

import keras
import keras_tuner
import numpy as np

from keras_rlnas import _checks as checks
from keras_rlnas.data import arrays, augmentation
from keras_rlnas.spaces import ENASMicro, VanillaNAS
from keras_rlnas.time_budget import CosineToDeadline, StopAtDeadline, plan_within

#: The reference code's micro final training: drop-path rate and auxiliary loss weight.
MICRO_DROP_PATH = 0.4
MICRO_AUXILIARY_WEIGHT = 0.4


def retrain(
    space,
    hp,
    x,
    y=None,
    *,
    epochs=10,
    batch_size=128,
    validation_data=None,
    filters=None,
    cutout=None,
    pad=None,
    flip=False,
    drop_path=None,
    auxiliary_weight=None,
    time_budget=None,
    callbacks=None,
    seed=0,
    verbose=0,
    inherit_from=None,
):
    """Trains the architecture `hp` of `space` from scratch or from inherited weights.

    Args:
        space: a `VanillaNAS`, `ENASMacro` or `ENASMicro`.
        hp: the architecture: a `keras_tuner.HyperParameters` of the space
            or its `{name: value}` values.
        x, y: training arrays, or `x` a finite `tf.data.Dataset` of
            `(images, labels)` batches and `y` `None`.
        epochs: training epochs (one cosine cycle over them), or with a
            `time_budget` the most epochs.
        batch_size: minibatch size of arrays.
        validation_data: optional `(x, y)` or dataset passed to `fit`.
        filters: ENAS spaces: channels of the final network (the paper
            widens it: 36 -> 96 macro, 20 -> 36 micro); the space's when `None`.
        cutout: side of the square cut out of each training image (arrays;
            a dataset brings its own augmentation), or `None`.
        pad: pixels of zero padding around each training image before a
            random crop back to its size (arrays), or `None`: no shift (the
            reference code pads CIFAR's 32 x 32 images by 4).
        flip: flip training images left-right at random (arrays).
        drop_path: micro space: scheduled drop-path rate in the cells
            (`MICRO_DROP_PATH` when `None`).
        auxiliary_weight: micro space: weight of the auxiliary head's loss
            (`MICRO_AUXILIARY_WEIGHT` when `None`).
        time_budget: seconds for the whole training, or `None`. The epochs'
            count and length (a little more or less than one pass over the
            data) are then fitted to it from the timed steps of a probe copy
            of the child (`keras_rlnas.time_budget`); training then runs to
            the deadline or to `epochs`, whichever comes first, on one cosine
            cycle set before every step from the share of the time or of the
            steps spent, whichever leads, so it ends at its minimum however
            far the probe misjudged the steps (`CosineToDeadline`; the
            micro space's drop-path schedule follows the planned steps).
            Training stops a validation pass before the budget's end.
        callbacks: Keras callbacks for `fit`. With an auxiliary head they
            also see the main output's metrics under one-output names
            (`accuracy`, `val_accuracy`; `MainOutputMetrics`).
        seed: seed of the shuffling and augmentation of arrays.
        verbose: `fit`'s verbosity.
        inherit_from: optional model of the same architecture holding trained
            weights (e.g. `Supernet.build_child(encoding)`); the child starts
            from them instead of a random initialisation (`inherit_weights`),
            and the learning-rate schedule is unchanged.

    Returns:
        The trained `keras.Model` (class probabilities only: an auxiliary
        head is left out); `model.history` is `fit`'s history.
    """
    values = dict(checks.values_of(hp))
    x, y, validation_data = _checked_data(space, x, y, validation_data)
    train, steps = training_batches(x, y, batch_size, cutout, seed, pad=pad, flip=flip)
    regularization = _regularization(space, drop_path, auxiliary_weight)
    max_epochs, callbacks = checks.positive_int("epochs", epochs), list(callbacks or [])
    if regularization.get("auxiliary_weight"):
        train, validation_data = _with_auxiliary_labels(train), _with_auxiliary_labels(validation_data)
        callbacks.insert(0, MainOutputMetrics())
    build, learning_rates = _child_builder(space, values, steps, filters, regularization)
    epochs, steps_per_epoch, on_the_clock = max_epochs, None, time_budget is not None
    if on_the_clock:
        deadline = time.time() + checks.positive_float("time_budget", time_budget)
        plan = plan_within(build, train, steps, validation_data, max_epochs, deadline, verbose)
        epochs, steps_per_epoch = plan.epochs, plan.steps_per_epoch
        # Epochs of a fitted length, each a little more or less than one pass over the data.
        train = train.repeat()
        # Training runs on to the deadline (or the epoch cap), its rate annealed by whichever ends first,
        # however far the probe misjudged the steps; fit's last validation pass comes after the stop.
        stop_at, first_epoch_stop_at = deadline - plan.closing_seconds, deadline - plan.first_closing_seconds
        peak, minimum = learning_rates
        cosine_end = first_epoch_stop_at if epochs == 1 else stop_at
        callbacks.insert(0, CosineToDeadline(cosine_end, minimum, peak, total_steps=max_epochs * steps_per_epoch))
        callbacks.append(StopAtDeadline(stop_at, first_epoch_deadline=first_epoch_stop_at))
    model = build(epochs, steps_per_epoch or steps, on_the_clock)
    if inherit_from is not None:
        inherit_weights(model, inherit_from)
    history = model.fit(
        train, epochs=max_epochs, steps_per_epoch=steps_per_epoch,
        validation_data=validation_data, callbacks=callbacks, shuffle=False, verbose=verbose,
    )
    if len(model.outputs) > 1:
        model = _without_auxiliary_head(model)
        model.history = history
    return model


def retrain_own_model(space, hp, x, y=None, *, epochs=10, batch_size=128, validation_data=None, cutout=None,
                      pad=None, flip=False, time_budget=None, callbacks=None, seed=0, verbose=0, filters=None, drop_path=None,
                      auxiliary_weight=None, inherit_from=None):
    """Trains the plain model a user's build function makes for `hp`, with its own compile settings.

    Args:
        space: a `keras_rlnas.supernet.ChoiceSpace` (a model built with
            `LayerChoice` / `InputChoice`).
        hp, x, y, epochs, batch_size, validation_data, cutout, pad, flip,
            callbacks, seed, verbose, inherit_from: as for `retrain`.
        time_budget: seconds, or `None`: training stops at the budget (the
            model's own learning-rate schedule is kept).
        filters, drop_path, auxiliary_weight: options of the ENAS spaces'
            final networks, accepted so that every space is retrained through
            one call; they must be unset.

    Returns:
        The trained `keras.Model`; `model.history` is `fit`'s history.
    """
    enas_options = {"filters": filters, "drop_path": drop_path, "auxiliary_weight": auxiliary_weight}
    given = {name: value for name, value in enas_options.items() if value}
    if given:
        raise ValueError(
            f"{sorted(given)} configure the ENAS spaces' final networks; a model built with choice layers is trained "
            f"as its build function makes it, got {given}."
        )
    model = space.build_child(space.as_encoding(hp))
    if getattr(model, "optimizer", None) is None:
        raise ValueError(f"The build function of {space.name!r} returns an uncompiled model; compile it to retrain it.")
    if inherit_from is not None:
        inherit_weights(model, inherit_from)
    x, y, validation_data = _checked_data(space, x, y, validation_data)
    train, _ = training_batches(x, y, batch_size, cutout, seed, pad=pad, flip=flip)
    callbacks = list(callbacks or [])
    if time_budget is not None:
        callbacks.append(StopAtDeadline(time.time() + checks.positive_float("time_budget", time_budget)))
    model.fit(train, epochs=epochs, validation_data=validation_data, callbacks=callbacks, shuffle=False, verbose=verbose)
    return model


def inherit_weights(child, source):
    """Loads into `child` the weights of the layers of `source` that bear the same names.

    Every layer of `source` that holds weights must be found in `child`
    with weights of the same shapes; layers only `child` has (the micro
    final network's auxiliary head) keep their initialisation.

    Args:
        child: the model to train, e.g. a fresh final network.
        source: a model of the same architecture and width holding trained
            weights, e.g. `Supernet.build_child(encoding)`.

    Returns:
        `child`.

    Example:

    >>> from keras_rlnas.spaces import ENASMacro
    >>> space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4)
    >>> encoding = space.random_encoding(0)
    >>> trained, fresh = space.build_child(encoding), space.build_child(encoding)
    >>> child = inherit_weights(fresh, trained)
    >>> all((a == b).all() for a, b in zip(child.get_weights(), trained.get_weights()))
    True
    """
    layers = {layer.name: layer for layer in child.layers}
    for layer in source.layers:
        if not layer.weights:
            continue
        target = layers.get(layer.name)
        shapes = [tuple(weight.shape) for weight in layer.weights]
        if target is None or [tuple(weight.shape) for weight in target.weights] != shapes:
            found = None if target is None else [tuple(weight.shape) for weight in target.weights]
            raise ValueError(
                f"Cannot inherit the weights of layer {layer.name!r} (shapes {shapes}): the child "
                f"{'has no such layer' if target is None else f'holds shapes {found}'}. Inherit from a model "
                "of the same architecture and width (for the ENAS spaces, `filters` as in the search)."
            )
        target.set_weights(layer.get_weights())
    return child


def training_batches(x, y, batch_size, cutout=None, seed=None, *, pad=None, flip=False):
    """The training data as shuffled minibatches for `fit`.

    Args:
        x, y: arrays of images and integer labels; or, as `x`, a finite
            batched `tf.data.Dataset`, used as it is (`y` is then ignored).
        batch_size: minibatch size for arrays.
        cutout: side of the square cut out of each image (arrays only), or `None`.
        seed: seed of the shuffling and augmentation.
        pad: pixels of zero padding before a random crop back to size
            (arrays only), or `None`.
        flip: random left-right flips (arrays only).

    Returns:
        `(batches, steps per epoch)`.
    """
    augmenting = {name: value for name, value in (("cutout", cutout), ("pad", pad), ("flip", flip)) if value}
    if hasattr(x, "as_numpy_iterator"):
        if augmenting:
            raise ValueError(
                f"{sorted(augmenting)} augment arrays, got {augmenting} with a dataset: augment in its "
                "pipeline instead (`keras_rlnas.data.load(..., pad=..., flip=..., cutout=...)`)."
            )
        steps = int(x.cardinality())
        if steps < 1:
            raise ValueError(f"Final training needs a finite dataset of known length; its cardinality is {steps}.")
        return x, steps
    import tensorflow as tf

    batch_size = checks.positive_int("batch_size", batch_size)
    size = checks.positive_int("cutout", cutout) if cutout else None
    shift = checks.positive_int("pad", pad, minimum=0) if pad is not None else 0
    x, y = np.asarray(x, "float32"), np.asarray(y, "int32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(min(len(x), 10000), seed=seed)
    if augmenting:
        flip = bool(flip)

        # A named function: autograph cannot read a lambda's source inside a call and warns.
        def augment(image, label):
            return augmentation.augment(image, shift, flip, size, seed), label

        # One map call at a time: parallel calls would hand the seeded draws out in the threads' order.
        dataset = dataset.map(augment)
    return dataset.batch(batch_size).prefetch(2), int(np.ceil(len(x) / batch_size))


def _checked_data(space, x, y, validation_data):
    """Arrays checked against `space` as `ENASTuner.search` checks them (`keras_rlnas.data.arrays`)."""
    if not hasattr(x, "as_numpy_iterator"):
        x, y = arrays.check_arrays(space, x, y, "training")
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        validation_data = arrays.check_arrays(space, *validation_data, "validation")
    return x, y, validation_data


def _regularization(space, drop_path, auxiliary_weight):
    """The drop-path and auxiliary-head options of the child (micro space only)."""
    if isinstance(space, ENASMicro):
        return {
            "drop_path": MICRO_DROP_PATH if drop_path is None else drop_path,
            "auxiliary_weight": MICRO_AUXILIARY_WEIGHT if auxiliary_weight is None else auxiliary_weight,
        }
    if drop_path or auxiliary_weight:
        raise ValueError(
            f"drop_path={drop_path!r} and auxiliary_weight={auxiliary_weight!r}: the {space.name} space has "
            "no cells to drop paths in and no auxiliary head; leave them unset."
        )
    return {}


def _child_builder(space, values, steps, filters, regularization):
    """`(build, (peak, minimum))`: `build(epochs, steps, on_the_clock=False)` compiles a fresh child of
    `values`, its learning rate one cosine cycle over `epochs` of `steps` minibatches (by default one pass
    over the data) between the space's peak and minimum rates; `on_the_clock`: a float rate, for
    `CosineToDeadline` to set."""
    if isinstance(space, VanillaNAS):
        if filters is not None:
            raise ValueError(
                f"`filters` widens the ENAS spaces; VanillaNAS searches its filter counts, got filters={filters!r}."
            )
        hp = keras_tuner.HyperParameters()
        hp.values = dict(values)
        description = space.describe(hp)

        def build_vanilla(epochs, steps=steps, on_the_clock=False):
            model = space.build_model(description, compile=False)
            learning_rate = space.learning_rate if on_the_clock else keras.optimizers.schedules.CosineDecay(
                space.learning_rate, max(epochs, 1) * steps)
            optimizer = keras.optimizers.SGD(
                learning_rate,
                momentum=space.momentum,
                nesterov=space.nesterov,
                weight_decay=space.weight_decay if space.decoupled_weight_decay else None,
            )
            model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return model

        return build_vanilla, (space.learning_rate, 0.0)
    encoding = space.encode(values)
    if filters is not None:
        space = space.with_options(filters=checks.positive_int("filters", filters))

    def build_enas(epochs, steps=steps, on_the_clock=False):
        # The search's warm restarts become one cycle over the whole training.
        cycle = space.with_options(restart_period=max(epochs, 1), restart_multiplier=1,
                                   steps_per_epoch=None if on_the_clock else steps)
        if not regularization:
            return cycle.build_child(encoding)
        return cycle.build_child(encoding, total_steps=max(epochs, 1) * steps, **regularization)

    return build_enas, (space.training.learning_rate, space.training.min_learning_rate)


def _with_auxiliary_labels(data):
    """`(images, labels)` data as `(images, (labels, labels))` for a two-output child."""
    if data is None:
        return None
    if hasattr(data, "map"):
        return data.map(lambda images, labels: (images, (labels, labels)))
    images, labels = data
    return images, (labels, labels)


class MainOutputMetrics(keras.callbacks.Callback):
    """Logs a two-output child's main-output metrics under the one-output names too.

    Keras names the metrics of the class-probability output of a child with an
    auxiliary head `probabilities_accuracy`, so callbacks written for every
    child (`EarlyStopping(monitor="val_accuracy")`, `ModelCheckpoint`) would
    find nothing to watch; with this callback first in `fit`'s list they see
    `accuracy` and `val_accuracy` as for a one-output child.
    """

    def _alias(self, logs):
        if not logs:
            return
        main = self.model.output_names[0]
        for prefix in ("", "val_"):
            for key in [key for key in logs if key.startswith(f"{prefix}{main}_")]:
                logs.setdefault(prefix + key[len(prefix) + len(main) + 1:], logs[key])

    def on_train_batch_end(self, batch, logs=None):
        self._alias(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._alias(logs)


def _without_auxiliary_head(model):
    """The class-probability output of a trained two-output child, compiled like it."""
    single = keras.Model(model.inputs[0], model.outputs[0], name=model.name)
    optimizer = type(model.optimizer).from_config(model.optimizer.get_config())
    single.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Built now, so a saved copy reloads without an optimizer mismatch.
    single.optimizer.build(single.trainable_variables)
    return single


__all__ = ["MICRO_DROP_PATH", "MICRO_AUXILIARY_WEIGHT", "StopAtDeadline", "retrain"]
