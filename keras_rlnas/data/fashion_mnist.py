"""Fashion-MNIST from local IDX files, so that searches run without internet.

The four files of the original release (`train-images-idx3-ubyte.gz`,
`train-labels-idx1-ubyte.gz`, `t10k-images-idx3-ubyte.gz`,
`t10k-labels-idx1-ubyte.gz`) are read straight into NumPy. MNIST and KMNIST
ship in the same format, so `load_idx_folder` reads them too.
"""

import gzip
import os

import numpy as np

ENV_VAR = "KERAS_RLNAS_FASHION_MNIST"
DEBIAN_FOLDER = "/usr/share/datasets/fashion-mnist"

_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
# IDX magic numbers: two zero bytes, the element type (0x08 = uint8), the rank.
_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801

HOW_TO_GET_FASHION_MNIST = (
    "Get Fashion-MNIST in one of these ways: `apt-get install dataset-fashion-mnist` "
    f"(Debian/Ubuntu; installs {DEBIAN_FOLDER}); or download the four IDX files "
    "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz) from https://github.com/zalandoresearch/fashion-mnist "
    f"into a folder and set the environment variable {ENV_VAR} to it (or pass `path=`); "
    "or, with internet, `tfds build fashion_mnist`."
)


class DataNotFoundError(FileNotFoundError):
    """A data set is neither available locally nor obtainable right now.

    The message says where the data was looked for and how to get it.
    """


def _find_file(folder, stem):
    for name in (stem + ".gz", stem):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    # Some mirrors rename the dots: `train-images.idx3-ubyte`.
    alternative = stem.replace("-idx", ".idx")
    for name in (alternative + ".gz", alternative):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _read_idx(filename, expected_magic):
    opener = gzip.open if filename.endswith(".gz") else open
    with opener(filename, "rb") as handle:
        raw = handle.read()
    if len(raw) < 8:
        raise ValueError(f"{filename} is too short ({len(raw)} bytes) to be an IDX file.")
    magic = int.from_bytes(raw[0:4], "big")
    if magic != expected_magic:
        raise ValueError(
            f"{filename} has IDX magic number {magic:#010x}, expected {expected_magic:#010x}: "
            "it is not the file its name says (images and labels swapped, or not IDX)."
        )
    rank = magic & 0xFF
    shape = tuple(
        int.from_bytes(raw[4 + 4 * axis : 8 + 4 * axis], "big") for axis in range(rank)
    )
    offset = 4 + 4 * rank
    expected_bytes = int(np.prod(shape))
    if len(raw) - offset != expected_bytes:
        raise ValueError(
            f"{filename} declares shape {shape} ({expected_bytes} bytes of data) but holds "
            f"{len(raw) - offset}: the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def load_idx_folder(folder):
    """Reads the four IDX files of an MNIST-format data set from `folder`.

    Args:
        folder: a directory holding `train-images-idx3-ubyte[.gz]`,
            `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]` and
            `t10k-labels-idx1-ubyte[.gz]`.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: images as `uint8` arrays of
        shape `(n, height, width)`, labels as `uint8` arrays of shape `(n,)`.

    Raises:
        DataNotFoundError: a file is missing.
        ValueError: a file is not a valid IDX file, or images and labels disagree
            in number.
    """
    arrays = {}
    for key, stem in _FILES.items():
        filename = _find_file(folder, stem)
        if filename is None:
            raise DataNotFoundError(f"{folder!r} has no {stem}.gz (nor {stem}).")
        magic = _IMAGES_MAGIC if key.startswith("x") else _LABELS_MAGIC
        arrays[key] = _read_idx(filename, magic)
    for split in ("train", "test"):
        images, labels = arrays["x_" + split], arrays["y_" + split]
        if len(images) != len(labels):
            raise ValueError(
                f"{folder!r}: the {split} split has {len(images)} images but "
                f"{len(labels)} labels."
            )
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def fashion_mnist_folders(path=None):
    """The folders searched for Fashion-MNIST IDX files, in order.

    `path` if given, else the folder named by `$KERAS_RLNAS_FASHION_MNIST`
    if set, then Debian's `/usr/share/datasets/fashion-mnist`.
    """
    if path is not None:
        return [os.fspath(path)]
    folders = []
    if os.environ.get(ENV_VAR):
        folders.append(os.environ[ENV_VAR])
    folders.append(DEBIAN_FOLDER)
    return folders


def find_fashion_mnist(path=None):
    """The first folder of `fashion_mnist_folders(path)` that holds all four files, or `None`."""
    for folder in fashion_mnist_folders(path):
        if all(_find_file(folder, stem) for stem in _FILES.values()):
            return folder
    return None


def load_fashion_mnist(path=None):
    """Loads Fashion-MNIST from local IDX files.

    Search order: `path` (only it, when given), the folder named by the
    environment variable `KERAS_RLNAS_FASHION_MNIST`, then Debian's
    `/usr/share/datasets/fashion-mnist` (package `dataset-fashion-mnist`).

    Args:
        path: a folder holding the four IDX files (gzip-compressed or not).

    Returns:
        `((x_train, y_train), (x_test, y_test))`: `uint8` images of shape
        `(60000, 28, 28)` and `(10000, 28, 28)`, `uint8` labels in `0..9`.

    Raises:
        DataNotFoundError: no searched folder holds the files; the message says
            where it looked and how to get the data.

    Example:

    >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist()  # doctest: +SKIP
    >>> x_train.shape, y_test[:3]  # doctest: +SKIP
    ((60000, 28, 28), array([9, 2, 1], dtype=uint8))
    """
    folder = find_fashion_mnist(path)
    if folder is None:
        searched = ", ".join(repr(f) for f in fashion_mnist_folders(path))
        raise DataNotFoundError(
            f"Fashion-MNIST IDX files not found (searched {searched}). "
            + HOW_TO_GET_FASHION_MNIST
        )
    return load_idx_folder(folder)
