"""Data sets for NAS: tensorflow-datasets pipelines with the papers' preprocessing, offline Fashion-MNIST."""

from keras_rlnas.data.augmentation import cutout
from keras_rlnas.data.datasets import NO_FLIP_DATASETS, DatasetInfo, Splits, load, load_arrays
from keras_rlnas.data.fashion_mnist import DataNotFoundError, load_fashion_mnist, load_idx_folder

__all__ = [
    "NO_FLIP_DATASETS",
    "DataNotFoundError",
    "DatasetInfo",
    "Splits",
    "cutout",
    "load",
    "load_arrays",
    "load_fashion_mnist",
    "load_idx_folder",
]
