"""Where the images come from: tensorflow-datasets, or local files for offline use.

`load_raw` returns unprocessed `uint8` splits; `keras_rlnas.data.datasets`
whitens and augments them.
"""

from keras_rlnas.data import fashion_mnist

DataNotFoundError = fashion_mnist.DataNotFoundError

# Data sets that can be read from local files: name -> (find folder, load arrays).
_LOCAL_LOADERS = {"fashion_mnist": (fashion_mnist.find_fashion_mnist, fashion_mnist.load_fashion_mnist)}
_LOCAL_HOW_TO = {"fashion_mnist": fashion_mnist.HOW_TO_GET_FASHION_MNIST}


class RawSplits:
    """Unprocessed uint8 splits, as `tf.data` (tfds) or as NumPy arrays (local files)."""

    def __init__(self, name, source, input_shape, num_classes, splits, arrays=None):
        self.name = name
        self.source = source
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes = int(num_classes)
        self.train, self.validation, self.test = splits
        self.arrays = arrays
        self.num_validation = _count(self.validation, arrays and arrays["validation"])
        self.num_test = _count(self.test, arrays and arrays["test"])


def _count(dataset, pair):
    if pair is not None:
        return len(pair[0])
    if dataset is None:
        return None
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality >= 0 else None


def load_raw(name, validation_size, data_dir, source, download, limit, test_split):
    """The unprocessed splits of `name` (arguments as in `keras_rlnas.data.load`).

    Order with `source=None`: a prepared tensorflow-datasets copy, local files
    (Fashion-MNIST), then a tensorflow-datasets download.

    Returns:
        A `RawSplits`.
    """
    builder, tfds_problem = None, None
    if source != "local":
        builder, tfds_problem = _tfds_builder(name, data_dir)
    if source == "tfds" and builder is None:
        raise tfds_problem
    if builder is not None and (source == "tfds" or builder.is_prepared()):
        return _raw_from_tfds(builder, name, validation_size, download, limit, test_split)

    local = _LOCAL_LOADERS.get(name)
    if local is not None and (source == "local" or local[0]() is not None):
        return _raw_from_arrays(name, local[1](), validation_size, limit, local[0]())
    if source == "local":
        raise ValueError(
            f"No local files are supported for {name!r}; local sources exist for "
            f"{sorted(_LOCAL_LOADERS)}. Use source='tfds' or source=None."
        )
    if builder is None:
        raise tfds_problem
    return _raw_from_tfds(builder, name, validation_size, download, limit, test_split)


def _tfds_builder(name, data_dir):
    """`(builder, None)`, or `(None, exception to raise)` when tfds cannot serve `name`."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        return None, DataNotFoundError(
            f"tensorflow-datasets is not installed ({error}); `pip install tensorflow-datasets` "
            f"to load {name!r}." + _how_to_suffix(name)
        )
    try:
        return tfds.builder(name, data_dir=data_dir), None
    except tfds.core.registered.DatasetNotFoundError:
        return None, ValueError(
            f"Unknown dataset {name!r}: tensorflow-datasets has no such name "
            "(`tensorflow_datasets.list_builders()` lists them), e.g. 'cifar10', "
            "'mnist', 'fashion_mnist'."
        )


def _how_to_suffix(name):
    return (" " + _LOCAL_HOW_TO[name]) if name in _LOCAL_HOW_TO else ""


def _raw_from_tfds(builder, name, validation_size, download, limit, test_split):
    features = builder.info.features
    if builder.info.supervised_keys is None or "image" not in features or "label" not in features:
        raise ValueError(
            f"{name!r} is not an image classification set: it needs `image` and `label` "
            f"features, has {sorted(features.keys())}."
        )
    input_shape = features["image"].shape
    if any(d is None for d in input_shape):
        raise ValueError(
            f"{name!r} has images of varying size {input_shape}; only fixed-size sets are supported."
        )
    if not builder.is_prepared():
        if not download:
            raise DataNotFoundError(
                f"{name!r} is not prepared in {builder.data_dir!r} and download=False. "
                + _tfds_how_to(name)
            )
        try:
            builder.download_and_prepare()
        except Exception as error:  # network, missing optional modules, disk...
            raise DataNotFoundError(
                f"Could not download {name!r} with tensorflow-datasets "
                f"({type(error).__name__}: {error}). " + _tfds_how_to(name)
            ) from error

    known_splits = dict(builder.info.splits.items()) if builder.info.splits else {}
    if known_splits:
        if test_split not in known_splits:
            raise ValueError(f"{name!r} has no split {test_split!r}; it has {sorted(known_splits)}.")
        num_train = known_splits["train"].num_examples
        if validation_size >= num_train:
            raise ValueError(
                f"validation_size={validation_size} leaves no training example: "
                f"{name!r} has {num_train} training examples."
            )
    train_split = f"train[:-{validation_size}]" if validation_size else "train"
    names = [train_split, f"train[-{validation_size}:]" if validation_size else None, test_split]
    splits = []
    for split in names:
        if split is None:
            splits.append(None)
            continue
        dataset = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        splits.append(dataset.take(limit) if limit else dataset)
    num_classes = features["label"].num_classes
    return RawSplits(name, "tfds", input_shape, num_classes, splits)


def _tfds_how_to(name):
    return (
        f"Without internet, run `tfds build {name} --data_dir DIR` on a machine that has it, "
        "copy DIR here and pass data_dir=DIR (or set TFDS_DATA_DIR)." + _how_to_suffix(name)
    )


def _raw_from_arrays(name, loaded, validation_size, limit, folder):
    import tensorflow as tf

    (x_train, y_train), (x_test, y_test) = loaded
    if x_train.ndim == 3:  # IDX images carry no channel axis
        x_train, x_test = x_train[..., None], x_test[..., None]
    if validation_size >= len(x_train):
        raise ValueError(
            f"validation_size={validation_size} leaves no training example: "
            f"{name!r} has {len(x_train)} training examples."
        )
    cut = len(x_train) - validation_size
    pairs = {
        "train": (x_train[:cut], y_train[:cut]),
        "validation": (x_train[cut:], y_train[cut:]) if validation_size else None,
        "test": (x_test, y_test),
    }
    if limit:
        pairs = {k: None if p is None else (p[0][:limit], p[1][:limit]) for k, p in pairs.items()}
    datasets = [
        None if pairs[k] is None else tf.data.Dataset.from_tensor_slices(pairs[k])
        for k in ("train", "validation", "test")
    ]
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return RawSplits(name, folder, x_train.shape[1:], num_classes, datasets, arrays=pairs)
