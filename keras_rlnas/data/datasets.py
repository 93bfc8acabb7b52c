"""Image classification data sets with the preprocessing of the NAS papers.

Zoph & Le (2017) and Pham et al. (2018) whiten every image with per-channel
statistics of the training images, pad it by 4 pixels and crop a random window
back to the original size, flip it horizontally at random, and (ENAS final
training) cut out a random square. `load` builds those pipelines with
`tf.data` for any image classification set of tensorflow-datasets; `load_arrays`
returns the same whitened splits as NumPy arrays for small experiments.

Where the data comes from: a prepared tensorflow-datasets copy (under
`data_dir` or `$TFDS_DATA_DIR`) first; for Fashion-MNIST, local IDX files next
(see `keras_rlnas.data.fashion_mnist`); a tensorflow-datasets download last.
Without internet and local files the call fails with `DataNotFoundError`,
whose message says how to get the data.
"""

import dataclasses
from typing import NamedTuple

import numpy as np

from keras_rlnas import _checks as checks
from keras_rlnas.data import augmentation, fashion_mnist, sources

DataNotFoundError = fashion_mnist.DataNotFoundError

# Digits and characters change meaning when mirrored, so they are not flipped by
# default. Clothes (Fashion-MNIST) and natural images (CIFAR) are.
NO_FLIP_DATASETS = frozenset(
    {"mnist", "emnist", "kmnist", "binarized_mnist", "svhn_cropped", "omniglot"}
)

_SOURCES = (None, "tfds", "local")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model and a report need to know about loaded data.

    Attributes:
        name: the tensorflow-datasets name, e.g. `"cifar10"`.
        input_shape: shape of one image, `(height, width, channels)`.
        num_classes: number of labels.
        mean: per-channel mean of the training images (pixel scale 0-255).
        std: per-channel standard deviation of the training images.
        num_train: number of training examples (validation excluded).
        num_validation: number of validation examples (0 when none).
        num_test: number of test examples, or `None` when unknown.
        source: `"tfds"` or the local folder the files were read from.
        flip: whether training images are flipped horizontally at random.
    """

    name: str
    input_shape: tuple
    num_classes: int
    mean: tuple
    std: tuple
    num_train: int
    num_validation: int
    num_test: object
    source: str
    flip: bool


class Splits(NamedTuple):
    """`(train, validation, test, info)`; `validation` is `None` when `validation_size=0`."""

    train: object
    validation: object
    test: object
    info: DatasetInfo


def load(
    name,
    validation_size=5000,
    batch_size=128,
    augment=True,
    flip=None,
    pad=4,
    cutout=None,
    data_dir=None,
    source=None,
    download=True,
    limit=None,
    shuffle_buffer=10000,
    seed=None,
    test_split="test",
):
    """Loads an image classification set as `tf.data` pipelines.

    The last `validation_size` training examples form the validation split
    (45,000 / 5,000 for CIFAR-10, as in the papers). Every split is whitened
    with the per-channel mean and standard deviation of the training examples
    used. Training examples are then, when `augment`, zero-padded by `pad`
    pixels and randomly cropped back, flipped horizontally (see `flip`) and
    cut out (see `cutout`); they are shuffled every epoch.

    Args:
        name: a tensorflow-datasets name with `image` and `label` features:
            `"cifar10"`, `"cifar100"`, `"mnist"`, `"fashion_mnist"`, ...
        validation_size: training examples held out for validation (0: none).
        batch_size: examples per batch; `None` leaves the splits unbatched.
        augment: apply pad-and-crop, flips and cutout to training images.
        flip: random horizontal flips; `None` flips every set but digits and
            characters (`NO_FLIP_DATASETS`: mnist, emnist, kmnist, svhn...).
        pad: pixels of zero padding before the random crop (0: no crop).
        cutout: side of the square zeroed at a random place in each training
            image (16 for CIFAR in ENAS), or `None`.
        data_dir: tensorflow-datasets data directory (default `$TFDS_DATA_DIR`
            or `~/tensorflow_datasets`).
        source: `None` (prepared tfds copy, then local files, then download),
            `"tfds"` or `"local"` to force one.
        download: allow tensorflow-datasets to download and prepare the set.
        limit: keep at most this many examples of each split (tiny experiments).
        shuffle_buffer: size of the shuffle buffer of the training split.
        seed: seed of shuffling (the order repeats) and of augmentation
            (its draws are handed to the parallel map's threads in the order
            they ask, so they can differ between runs).
        test_split: name of the tensorflow-datasets split used as test set.

    Returns:
        `Splits(train, validation, test, info)`: `tf.data.Dataset`s of
        `(float32 image batch, int32 label batch)` and a `DatasetInfo`.

    Raises:
        ValueError: unknown data set or bad argument.
        DataNotFoundError: the data is not here and cannot be downloaded.

    Example:

    >>> train, validation, test, info = load("fashion_mnist", batch_size=64)  # doctest: +SKIP
    >>> model.fit(train, validation_data=validation, epochs=10)  # doctest: +SKIP
    """
    import tensorflow as tf

    _check_arguments(validation_size, batch_size, pad, cutout, limit, source, shuffle_buffer)
    raw = sources.load_raw(name, validation_size, data_dir, source, download, limit, test_split)
    train_raw = raw.train.cache() if raw.arrays is None else raw.train
    mean, std, num_train = _statistics(train_raw, raw.arrays)
    flip = (name not in NO_FLIP_DATASETS) if flip is None else bool(flip)
    info = _info(raw, mean, std, num_train, flip)

    mean_t = tf.constant(mean, tf.float32)
    std_t = tf.constant(std, tf.float32)

    def standardise(image, label):
        image = (tf.cast(image, tf.float32) - mean_t) / std_t
        return image, tf.cast(label, tf.int32)

    def augment_fn(image, label):
        return augmentation.augment(image, pad, flip, cutout, seed), label

    autotune = tf.data.AUTOTUNE
    train = train_raw.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    train = train.map(standardise, num_parallel_calls=autotune)
    if augment:
        train = train.map(augment_fn, num_parallel_calls=autotune)

    def finish(dataset):
        if dataset is None:
            return None
        if batch_size is not None:
            dataset = dataset.batch(batch_size)
        return dataset.prefetch(autotune)

    validation = None
    if raw.validation is not None:
        validation = raw.validation.map(standardise, num_parallel_calls=autotune).cache()
    test = raw.test.map(standardise, num_parallel_calls=autotune).cache()
    return Splits(finish(train), finish(validation), finish(test), info)


def load_arrays(
    name,
    validation_size=5000,
    limit=None,
    data_dir=None,
    source=None,
    download=True,
    test_split="test",
):
    """Loads an image classification set as whitened NumPy arrays (no augmentation).

    Same sources, validation hold-out and whitening as `load`; meant for small
    slices (`limit`) in tests, examples and quick searches.

    Args:
        name: a tensorflow-datasets name, e.g. `"fashion_mnist"`.
        validation_size: training examples held out for validation (0: none).
        limit: keep at most this many examples of each split.
        data_dir, source, download, test_split: as in `load`.

    Returns:
        `Splits((x_train, y_train), (x_val, y_val), (x_test, y_test), info)`:
        `float32` images of shape `(n, height, width, channels)` and `int32`
        labels; the validation pair is `None` when `validation_size=0`.

    Example:

    >>> (x, y), validation, test, info = load_arrays("fashion_mnist", limit=500)  # doctest: +SKIP
    >>> x.shape, info.num_classes  # doctest: +SKIP
    ((500, 28, 28, 1), 10)
    """
    _check_arguments(validation_size, None, 0, None, limit, source)
    raw = sources.load_raw(name, validation_size, data_dir, source, download, limit, test_split)
    arrays = raw.arrays or {
        split: _to_numpy(dataset)
        for split, dataset in (("train", raw.train), ("validation", raw.validation), ("test", raw.test))
    }
    mean, std, num_train = _statistics(None, arrays)
    info = _info(raw, mean, std, num_train, flip=False)

    def whiten(pair):
        if pair is None:
            return None
        images, labels = pair
        images = (images.astype(np.float32) - np.float32(mean)) / np.float32(std)
        return images, labels.astype(np.int32)

    return Splits(
        whiten(arrays["train"]), whiten(arrays["validation"]), whiten(arrays["test"]), info
    )


def _check_arguments(validation_size, batch_size, pad, cutout, limit, source, shuffle_buffer=None):
    for label, value, minimum in (
        ("validation_size", validation_size, 0),
        ("batch_size", batch_size, 1),
        ("pad", pad, 0),
        ("cutout", cutout, 1),
        ("limit", limit, 1),
        ("shuffle_buffer", shuffle_buffer, 1),
    ):
        if value is not None:
            checks.positive_int(label, value, minimum=minimum)
    if source not in _SOURCES:
        raise ValueError(f"`source` must be one of {_SOURCES}, got {source!r}.")


def _info(raw, mean, std, num_train, flip):
    return DatasetInfo(
        name=raw.name,
        input_shape=raw.input_shape,
        num_classes=raw.num_classes,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        num_train=int(num_train),
        num_validation=raw.num_validation or 0,
        num_test=raw.num_test,
        source=raw.source,
        flip=flip,
    )


def _statistics(dataset, arrays):
    """Per-channel mean, standard deviation and count of the training images."""
    if arrays is not None:
        images = arrays["train"][0]
        count = len(images)
        pixels = images.reshape(-1, images.shape[-1]).astype(np.float64)
        total, squares = pixels.sum(axis=0), np.square(pixels).sum(axis=0)
        pixel_count = len(pixels)
    else:
        total = squares = 0.0
        count = pixel_count = 0
        for images, _ in dataset.batch(2048).as_numpy_iterator():
            pixels = images.reshape(-1, images.shape[-1]).astype(np.float64)
            total = total + pixels.sum(axis=0)
            squares = squares + np.square(pixels).sum(axis=0)
            count += len(images)
            pixel_count += len(pixels)
    if count == 0:
        raise ValueError("The training split is empty; nothing to compute statistics from.")
    mean = total / pixel_count
    std = np.sqrt(np.maximum(squares / pixel_count - np.square(mean), 0.0))
    # A constant channel would divide by zero; leave it centred but unscaled.
    std = np.where(std < 1e-6, 1.0, std)
    return mean, std, count


def _to_numpy(dataset):
    if dataset is None:
        return None
    images, labels = [], []
    for image_batch, label_batch in dataset.batch(4096).as_numpy_iterator():
        images.append(image_batch)
        labels.append(label_batch)
    return np.concatenate(images), np.concatenate(labels)
