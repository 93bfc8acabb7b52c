"""The arguments of `ENASTuner.search`: Keras Tuner's, checked against the ENAS space.

`keras_tuner.RandomSearch.search(x, y, ...)` passes its arguments on to
`model.fit`. ENAS trains one supernet instead, so each of `fit`'s arguments
either gets an ENAS meaning here (`epochs`, `batch_size`, `shuffle`,
`validation_split`, `verbose`, `callbacks`) or is refused with the reason.
The data is checked against the space before the first step, and problems
are told in the space's terms.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from keras_rlnas.data import arrays

# fit() arguments that have no ENAS meaning, and why.
UNSUPPORTED = {
    "sample_weight": "the shared weights and the controller's reward weigh every example equally",
    "class_weight": "the shared weights and the controller's reward weigh every class equally",
    "steps_per_epoch": "an ENAS epoch is one pass over the training data; pass fewer examples instead",
    "validation_steps": "the controller draws validation minibatches as it needs them",
    "validation_freq": "the controller is rewarded on validation data in every epoch",
    "initial_epoch": "a search resumes from its last finished epoch by itself (overwrite=False)",
}
# Callbacks that would save or restore only part of the search state.
REFUSED_CALLBACKS = {
    "BackupAndRestore": "a search resumes by itself with overwrite=False, controller and supernet included",
    "ModelCheckpoint": "the child derived after each epoch is saved as a trial; use get_best_models()",
    "ReduceLROnPlateau": (
        "the shared weights' learning rate is set on its cosine schedule at each epoch's start, which would undo "
        "the reduction; a LearningRateScheduler, called after it, sets the rate of each epoch"
    ),
}
# Keys of the epoch logs that report the shared weights' training, not the recorded score.
TRAINING_LOG_KEYS = ("accuracy", "train_accuracy", "seconds", "omega_seconds", "controller_seconds",
                     "derivation_seconds", "learning_rate")


@dataclasses.dataclass
class SearchInputs:
    """The checked arguments of one `ENASTuner.search` call.

    Attributes:
        train: `(images, labels)` arrays, or a dataset of batches.
        validation: the same for the controller's reward.
        epochs, batch_size, shuffle, verbose: as given (defaults filled in).
        callbacks: the Keras callbacks, with a progress logger when `verbose`.
    """

    train: object
    validation: object
    epochs: int
    batch_size: int
    shuffle: bool
    verbose: int
    callbacks: list

    def training_data(self):
        """`train` as the omega phase reads it: arrays are reshuffled unless `shuffle` is False."""
        if self.shuffle or not isinstance(self.train, tuple):
            return self.train
        return OrderedBatches(self.train, self.batch_size)

    def callback_list(self, model, optimizer=None):
        """A `keras.callbacks.CallbackList` of `callbacks` bound to `model`.

        Args:
            model: the supernet's `keras.Model`.
            optimizer: the optimizer of the shared weights; set as
                `model.optimizer` (as `compile` would) when the model has
                none, since callbacks such as `TensorBoard` read it.
        """
        if optimizer is not None and getattr(model, "optimizer", None) is None:
            model.optimizer = optimizer
        return keras.callbacks.CallbackList(
            self.callbacks, add_history=False, add_progbar=False, model=model,
            epochs=self.epochs, verbose=self.verbose, steps=None,
        )


def prepare(space, x=None, y=None, validation_data=None, *, epochs=1, batch_size=128, validation_split=0.0,
            shuffle=True, verbose=1, callbacks=None, **unused):
    """Checks `ENASTuner.search`'s arguments and data against `space`.

    Args:
        space: the `ENASMacro` / `ENASMicro` space searched.
        x, y: training images and integer labels, or `x` a `tf.data.Dataset`
            of `(images, labels)` batches and `y` `None`.
        validation_data: `(images, labels)` or a dataset of batches.
        epochs: total ENAS epochs.
        batch_size: minibatch size for arrays.
        validation_split: fraction of the arrays (the last ones, as in
            `fit`) held out as validation data when `validation_data` is `None`.
        shuffle: reshuffle the training arrays every epoch.
        verbose: 0 silent, 1 or 2 one line per epoch.
        callbacks: Keras callbacks, called once per ENAS epoch.
        **unused: anything else `fit` accepts is refused with the reason.

    Returns:
        A `SearchInputs`.

    Raises:
        TypeError: an argument ENAS cannot honour.
        ValueError: a bad value, or data that does not fit the space.

    Example:

    >>> import numpy as np
    >>> from keras_rlnas import ENASMacro
    >>> space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3)
    >>> x, y = np.zeros((10, 8, 8, 1)), np.zeros(10, "int32")
    >>> inputs = prepare(space, x, y, validation_split=0.2, batch_size=4, verbose=0)
    >>> len(inputs.train[0]), len(inputs.validation[0])
    (8, 2)
    """
    _refuse_unsupported(unused)
    epochs = _int_at_least("epochs", epochs, 1)
    batch_size = _int_at_least("batch_size", batch_size, 1)
    verbose = {"auto": 1}.get(verbose, verbose)
    if verbose not in (0, 1, 2, False, True):
        raise ValueError(f"`verbose` must be 0, 1, 2 or 'auto', got {verbose!r}.")
    if not isinstance(shuffle, bool):
        raise ValueError(f"`shuffle` must be True or False, got {shuffle!r}.")
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) or not 0 <= validation_split < 1:
        raise ValueError(f"`validation_split` must be a number in [0, 1), got {validation_split!r}.")
    if _is_dataset(x):
        if y is not None:
            raise ValueError("`y` must be None when `x` is a dataset: its elements are (images, labels) batches.")
        if validation_split:
            raise ValueError("`validation_split` splits arrays; with a dataset `x`, pass `validation_data`.")
        train = _check_dataset(space, x, "training")
    else:
        train = arrays.check_arrays(space, x, y, "training")
        if validation_split and validation_data is None:
            # As fit() does: the last examples, before any shuffling.
            split_at = int(len(train[0]) * (1 - validation_split))
            if split_at < 1 or split_at == len(train[0]):
                raise ValueError(
                    f"validation_split={validation_split} of {len(train[0])} examples leaves "
                    f"{split_at} for training and {len(train[0]) - split_at} for validation; both need some."
                )
            validation_data = (train[0][split_at:], train[1][split_at:])
            train = (train[0][:split_at], train[1][:split_at])
    if validation_data is None:
        raise ValueError(
            "ENASTuner.search needs `validation_data` or `validation_split`: validation accuracy is the controller's reward."
        )
    if _is_dataset(validation_data):
        validation = _check_dataset(space, validation_data, "validation")
    else:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(f"`validation_data` must be (images, labels) or a dataset, got {type(validation_data).__name__}.")
        if len(validation_data) == 3:
            raise TypeError(f"validation sample weights cannot apply: {UNSUPPORTED['sample_weight']}.")
        validation = arrays.check_arrays(space, *validation_data, "validation")
    return SearchInputs(train, validation, epochs, batch_size, shuffle, int(verbose),
                        _check_callbacks(callbacks) + ([EpochLogger()] if verbose else []))


def epoch_logs(record, objective, learning_rate=None):
    """The logs Keras callbacks get at the end of an ENAS epoch.

    Args:
        record: the epoch's entry of `ENASTuner.history`.
        objective: name of the recorded score (`"val_accuracy"` by default).
        learning_rate: the shared weights' learning rate, if known.

    Returns:
        `loss` / `accuracy` of the shared weights on the training data (also
        as `train_loss` / `train_accuracy`), the derived child's score under
        `objective` and as `val_accuracy`, the controller's statistics as
        `controller_*`, the epoch's `seconds` and those of its three
        phases: `omega_seconds` (training the shared weights, with the data
        feeding), `controller_seconds` (the controller's updates) and
        `derivation_seconds` (deriving and recording the epoch's trial).
    """
    logs = {
        "loss": record["train_loss"],
        "accuracy": record["train_accuracy"],
        "train_loss": record["train_loss"],
        "train_accuracy": record["train_accuracy"],
        "val_accuracy": record["derived_accuracy"],
        objective: record["derived_accuracy"],
        "seconds": record["seconds"],
        **{key: record[key] for key in ("omega_seconds", "controller_seconds", "derivation_seconds") if key in record},
    }
    if "reward" in record:  # The controller's statistics; none with sampler="uniform".
        logs.update({f"controller_{k}": record[k] for k in ("reward", "baseline", "entropy", "loss") if k in record})
    if learning_rate is not None:
        # A mirrored variable (under a distribution strategy) converts through numpy(), not float().
        logs["learning_rate"] = float(np.asarray(learning_rate.numpy() if hasattr(learning_rate, "numpy") else learning_rate))
    return {k: float(v) for k, v in logs.items()}


class EpochLogger(keras.callbacks.Callback):
    """Prints one Keras-style line per ENAS epoch: `Epoch 3/10 - 12s - loss: ... - val_accuracy: ...`."""

    SHOWN = ("loss", "accuracy", "controller_reward", "val_accuracy")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = " - ".join(f"{k}: {logs[k]:.4f}" for k in self.SHOWN if k in logs)
        print(f"Epoch {epoch + 1}/{self.params.get('epochs')} - {logs.get('seconds', 0):.0f}s - {shown}", flush=True)


class OrderedBatches:
    """Training arrays served in their given order (`shuffle=False`), as a batched dataset would be.

    The last minibatch holds what is left: in a fixed order the same examples
    would otherwise be left out of every epoch.

    Example:

    >>> x, y = np.arange(10).reshape(10, 1), np.arange(10)
    >>> [len(labels) for _, labels in OrderedBatches((x, y), 4).as_numpy_iterator()]
    [4, 4, 2]
    """

    def __init__(self, arrays, batch_size):
        self.arrays, self.batch_size = arrays, batch_size

    def as_numpy_iterator(self):
        x, y = self.arrays
        for start in range(0, len(x), self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]


# ---------------------------------------------------------------------- checks
def _refuse_unsupported(unused):
    for name in unused:
        if name in UNSUPPORTED:
            raise TypeError(f"ENASTuner.search cannot apply `{name}`: {UNSUPPORTED[name]}.")
    if unused:
        raise TypeError(f"Unexpected arguments {sorted(unused)} for ENASTuner.search.")


def _int_at_least(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


def _is_dataset(data):
    return hasattr(data, "as_numpy_iterator") and hasattr(data, "element_spec")


def _check_dataset(space, dataset, what):
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(f"The {what} dataset must yield (images, labels) batches, got elements {spec}.")
    images, labels = spec
    if images.shape.rank != len(space.input_shape) + 1:
        unbatched = images.shape.rank == len(space.input_shape)
        raise ValueError(
            f"The {what} dataset must yield batches of images {arrays.batch_layout(space)}, got {images.shape}"
            + ("; batch it with .batch(batch_size)." if unbatched else ".")
        )
    if None not in images.shape[1:]:
        arrays.check_images_shape(space, images.shape[1:], what)
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            f"The {what} dataset repeats forever; an ENAS epoch is one pass over the training data and a final "
            "choice scores every validation image: pass a finite dataset, e.g. dataset.take(batches)."
        )
    for _, first_labels in dataset.take(1).as_numpy_iterator():
        arrays.check_labels(space, np.asarray(first_labels).reshape(-1), what)
        break
    else:
        raise ValueError(f"The {what} dataset yields no batches.")
    return dataset


def _check_callbacks(callbacks):
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise ValueError(f"`callbacks` must be keras.callbacks.Callback instances, got {callback!r}.")
        for name, reason in REFUSED_CALLBACKS.items():
            if isinstance(callback, getattr(keras.callbacks, name)):
                raise TypeError(f"ENASTuner.search cannot use {name}: {reason}.")
    return callbacks
