"""Fixtures shared by the test files."""

import numpy as np
import pytest

from keras_rlnas.tuners.grappler import switched_off


@pytest.fixture(scope="module")
def tiny_images():
    """`(x, y)`: 96 random 12 x 12 x 1 images and labels of 3 classes, for a tiny child's few steps."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 3, 96).astype("int32")
    return x, y


@pytest.fixture(scope="module")
def quick_graph_compilation():
    """Grappler's graph passes off for a test module: on tiny supernets they cost more than they save.

    The setting is global to the process, so the one found is restored when the module ends.
    """
    with switched_off():
        yield
