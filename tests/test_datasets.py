import gzip
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_rlnas import data
from keras_rlnas.data import fashion_mnist


def _write_idx(filename, array, compress=True):
    magic = (0x08 << 8) | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if compress else open
    with opener(filename + (".gz" if compress else ""), "wb") as handle:
        handle.write(payload)


def _fake_idx_folder(folder, num_train=60, num_test=20, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (num_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(num_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (num_test, 28, 28)),
        "t10k-labels-idx1-ubyte": (np.arange(num_test) * 3) % 10,
    }
    os.makedirs(folder, exist_ok=True)
    for stem, array in arrays.items():
        _write_idx(os.path.join(folder, stem), array, compress)
    return {k: v.astype(np.uint8) for k, v in arrays.items()}


@pytest.fixture
def local_fashion(tmp_path, monkeypatch):
    """Tiny Fashion-MNIST IDX files as the only local source; tfds holds nothing."""
    folder = str(tmp_path / "idx")
    arrays = _fake_idx_folder(folder)
    monkeypatch.setenv(fashion_mnist.ENV_VAR, folder)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", str(tmp_path / "no-debian"))
    return arrays, str(tmp_path / "tfds")


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_read_exactly(tmp_path, compress):
    arrays = _fake_idx_folder(str(tmp_path), compress=compress)
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(str(tmp_path))
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(x_test, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])


def test_environment_variable_then_debian_folder(tmp_path, monkeypatch):
    env_folder, debian_folder = str(tmp_path / "env"), str(tmp_path / "debian")
    _fake_idx_folder(debian_folder, num_train=30, seed=1)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", debian_folder)
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    assert len(data.load_fashion_mnist()[0][0]) == 30
    _fake_idx_folder(env_folder, num_train=40, seed=2)
    monkeypatch.setenv(fashion_mnist.ENV_VAR, env_folder)
    assert len(data.load_fashion_mnist()[0][0]) == 40


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", str(tmp_path / "nothing"))
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    with pytest.raises(data.DataNotFoundError) as error:
        data.load_fashion_mnist()
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert fashion_mnist.ENV_VAR in message
    assert str(tmp_path / "nothing") in message


def test_corrupt_idx_file_names_the_file(tmp_path):
    _fake_idx_folder(str(tmp_path))
    # Labels where images belong: the magic number tells them apart.
    os.replace(tmp_path / "train-labels-idx1-ubyte.gz", tmp_path / "train-images-idx3-ubyte.gz")
    _write_idx(str(tmp_path / "train-labels-idx1-ubyte"), np.zeros(60))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz has IDX magic"):
        data.load_fashion_mnist(str(tmp_path))


def test_real_fashion_mnist_when_installed():
    if fashion_mnist.find_fashion_mnist() is None:
        pytest.skip("Fashion-MNIST IDX files are not installed here")
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)


def test_load_arrays_holds_out_validation_and_whitens(local_fashion):
    arrays, empty_tfds = local_fashion
    (x, y), (x_val, y_val), (x_test, y_test), info = data.load_arrays(
        "fashion_mnist", validation_size=10, data_dir=empty_tfds
    )
    raw_train = arrays["train-images-idx3-ubyte"]
    assert x.shape == (50, 28, 28, 1) and x_val.shape == (10, 28, 28, 1)
    assert x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(y_val, arrays["train-labels-idx1-ubyte"][50:])
    # Statistics come from the 50 training images only, not validation or test.
    mean, std = raw_train[:50].mean(), raw_train[:50].std()
    assert info.mean[0] == pytest.approx(mean) and info.std[0] == pytest.approx(std)
    np.testing.assert_allclose(x_val[..., 0], (raw_train[50:] - mean) / std, atol=1e-5)
    assert abs(x.mean()) < 1e-5 and x.std() == pytest.approx(1.0, abs=1e-4)
    assert (info.num_train, info.num_validation, info.num_test) == (50, 10, 20)
    assert info.input_shape == (28, 28, 1) and info.num_classes == 10
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])


def test_load_arrays_limit_and_no_validation(local_fashion):
    _, empty_tfds = local_fashion
    train, validation, test, info = data.load_arrays(
        "fashion_mnist", validation_size=0, limit=7, data_dir=empty_tfds
    )
    assert validation is None and info.num_validation == 0
    assert len(train[0]) == 7 and len(test[0]) == 7


def _first_epoch(dataset):
    images, labels = zip(*dataset.as_numpy_iterator())
    return np.concatenate(images), np.concatenate(labels)


def test_pipelines_without_augmentation_match_arrays(local_fashion):
    _, empty_tfds = local_fashion
    expected = data.load_arrays("fashion_mnist", validation_size=10, data_dir=empty_tfds)
    train, validation, test, info = data.load(
        "fashion_mnist", validation_size=10, batch_size=16, augment=False,
        shuffle_buffer=1, data_dir=empty_tfds,
    )
    for dataset, (x, y) in ((train, expected.train), (validation, expected.validation), (test, expected.test)):
        images, labels = _first_epoch(dataset)
        np.testing.assert_allclose(images, x, atol=1e-5)
        np.testing.assert_array_equal(labels, y)
    assert next(iter(train))[0].shape == (16, 28, 28, 1)
    assert info.flip is True  # clothes may be mirrored


def _shift(image, dy, dx):
    shifted = np.zeros_like(image)
    h, w = image.shape[:2]
    shifted[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return shifted


def test_pad_and_crop_shifts_by_at_most_pad_pixels(local_fashion):
    _, empty_tfds = local_fashion
    expected = data.load_arrays("fashion_mnist", validation_size=10, data_dir=empty_tfds)
    train, *_ = data.load(
        "fashion_mnist", validation_size=10, batch_size=None, pad=4, flip=False,
        shuffle_buffer=1, seed=3, data_dir=empty_tfds,
    )
    moved = 0
    for (image, _), original in zip(train.as_numpy_iterator(), expected.train[0]):
        shifts = [
            (dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
            if np.allclose(image, _shift(original, dy, dx), atol=1e-5)
        ]
        assert shifts, "an augmented image is not a shift of its original"
        moved += shifts[0] != (0, 0)
    assert moved > 25  # 80 of 81 offsets move the image


def test_final_training_arrays_are_shifted_and_flipped_like_the_pipeline():
    from keras_rlnas.retrain import training_batches

    rng = np.random.default_rng(0)
    x = rng.random((60, 8, 8, 1)).astype("float32")
    index = np.arange(60)  # as labels, each image's row in x
    batches, steps = training_batches(x, index, 16, seed=1, pad=2, flip=True)
    assert steps == 4
    moved = flipped = 0
    for images, rows in batches.as_numpy_iterator():
        for image, row in zip(images, rows):
            matches = [
                (dy, dx, mirrored) for mirrored in (False, True) for dy in range(-2, 3) for dx in range(-2, 3)
                if np.allclose(image, _shift(x[row][:, ::-1] if mirrored else x[row], dy, dx))
            ]
            assert matches, "an augmented image is not a shifted (and perhaps mirrored) original"
            moved += matches[0][:2] != (0, 0)
            flipped += matches[0][2]
    assert moved > 30 and 10 < flipped < 50
    plain, _ = training_batches(x, index, 16, seed=1)
    images, rows = next(plain.as_numpy_iterator())
    np.testing.assert_array_equal(images, x[rows])
    with pytest.raises(ValueError, match=r"\['flip', 'pad'\] augment arrays.*'pad': 2"):
        training_batches(batches, None, 16, pad=2, flip=True)
    with pytest.raises(ValueError, match="`pad` must be an integer >= 0, got -1"):
        training_batches(x, index, 16, pad=-1)


def test_flip_default_depends_on_the_data_set():
    assert "mnist" in data.NO_FLIP_DATASETS and "svhn_cropped" in data.NO_FLIP_DATASETS
    assert "fashion_mnist" not in data.NO_FLIP_DATASETS and "cifar10" not in data.NO_FLIP_DATASETS


def test_cutout_zeroes_one_square():
    image = tf.ones((32, 32, 3))
    for seed in range(10):
        out = data.cutout(image, 16, seed).numpy()
        zero = out[..., 0] == 0
        rows, cols = np.where(zero)
        assert 0 < zero.sum() <= 256
        # The zeroed pixels fill their bounding box: one clipped square.
        assert zero.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
        assert np.ptp(rows) < 16 and np.ptp(cols) < 16
        assert (out[zero] == 0).all() and (out[~zero] == 1).all()


def test_seeded_cutout_draws_row_and_column_apart_inside_a_pipeline():
    def cut_one_pixel(image):
        return data.cutout(image, 1, seed=5)

    images = tf.data.Dataset.from_tensors(tf.ones((16, 16, 1))).repeat(40).map(cut_one_pixel)
    holes = [tuple(np.argwhere(image[..., 0] == 0)[0]) for image in images.as_numpy_iterator()]
    assert len(set(holes)) > 20 and sum(row != col for row, col in holes) > 20


@pytest.mark.parametrize(
    "name, shape, flip", [("cifar10", (32, 32, 3), True), ("mnist", (28, 28, 1), False)]
)
def test_tensorflow_datasets_path_with_mock_data(name, shape, flip, tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=24):
        train, validation, test, info = data.load(
            name, validation_size=4, batch_size=8, cutout=8, data_dir=str(tmp_path)
        )
        plain = data.load(name, validation_size=4, batch_size=8, augment=False, data_dir=str(tmp_path))
        arrays = data.load_arrays(name, validation_size=4, limit=10, data_dir=str(tmp_path))
    assert info.source == "tfds" and info.input_shape == shape and info.num_classes == 10
    assert info.flip is flip and len(info.mean) == shape[-1]
    images, labels = next(iter(train))
    assert images.shape == (8, *shape) and images.dtype == tf.float32 and labels.dtype == tf.int32
    assert next(iter(validation))[0].shape[1:] == shape and next(iter(test))[0].shape[1:] == shape
    # Mock images are uniform noise: whitened with their own statistics they are centred.
    whitened, _ = _first_epoch(plain.train)
    assert np.abs(whitened.reshape(-1, shape[-1]).mean(axis=0)).max() < 1e-4
    assert whitened.std() == pytest.approx(1.0, abs=1e-3)
    assert arrays.train[0].shape == (10, *shape) and arrays.test[0].dtype == np.float32


def test_fashion_mnist_can_be_forced_through_tensorflow_datasets(local_fashion):
    import tensorflow_datasets as tfds

    _, empty_tfds = local_fashion
    with tfds.testing.mock_data(num_examples=6):
        *_, info = data.load("fashion_mnist", validation_size=2, source="tfds", data_dir=empty_tfds)
    assert info.source == "tfds"
    *_, info = data.load("fashion_mnist", validation_size=2, data_dir=empty_tfds)
    assert info.source.endswith("idx")  # not prepared in tfds: the local files serve


def test_unknown_dataset_is_a_short_value_error():
    with pytest.raises(ValueError, match="Unknown dataset 'no_such_set'") as error:
        data.load("no_such_set")
    assert len(str(error.value)) < 400


def test_unprepared_without_download_says_how_to_get_data(tmp_path, monkeypatch):
    with pytest.raises(data.DataNotFoundError, match="tfds build cifar10"):
        data.load("cifar10", data_dir=str(tmp_path), download=False)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", str(tmp_path / "nothing"))
    monkeypatch.delenv(fashion_mnist.ENV_VAR, raising=False)
    with pytest.raises(data.DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load_arrays("fashion_mnist", data_dir=str(tmp_path), download=False)


def test_failed_download_becomes_data_not_found(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def offline(self, *args, **kwargs):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(data.DataNotFoundError, match="network unreachable.*tfds build mnist"):
        data.load("mnist", data_dir=str(tmp_path))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"validation_size": -1}, "validation_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"cutout": 2.5}, "cutout"),
        ({"shuffle_buffer": 0}, "`shuffle_buffer`.*0"),
        ({"batch_size": "64"}, "`batch_size`.*'64'"),
        ({"source": "web"}, "source"),
        ({"validation_size": 60}, "leaves no training example"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message, local_fashion):
    _, empty_tfds = local_fashion
    with pytest.raises(ValueError, match=message):
        data.load("fashion_mnist", data_dir=empty_tfds, **kwargs)
