"""Image augmentation that the training pipelines and final training share."""


def random_crop(image, pad, seed=None):
    """Zero-pads `image` by `pad` pixels on each side and crops a random window of its size back.

    The standard translation augmentation of the CIFAR recipes (`pad=4`) that
    the ENAS reference code trains with.

    Args:
        image: a `(height, width, channels)` image tensor.
        pad: pixels of zeros added on each side before the crop.
        seed: seed of the window's position.

    Returns:
        The shifted image, same shape and dtype.

    Example:

    >>> import numpy as np
    >>> out = random_crop(np.ones((8, 8, 1), "float32"), 2, seed=0).numpy()
    >>> out.shape, 36 <= int(out.sum()) <= 64
    ((8, 8, 1), True)
    """
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    padded = tf.image.pad_to_bounding_box(image, pad, pad, shape[0] + 2 * pad, shape[1] + 2 * pad)
    cropped = tf.image.random_crop(padded, shape, seed=seed)
    cropped.set_shape(image.shape)
    return cropped


def cutout(image, size, seed=None):
    """Zeroes a `size` x `size` square centred at a random pixel (DeVries & Taylor, 2017).

    Near a border the square is clipped, as in the reference code.

    Args:
        image: a `(height, width, channels)` image tensor.
        size: side of the square, in pixels.
        seed: seed of the square's position.

    Returns:
        The image with the square zeroed, same shape and dtype.

    Example:

    >>> import numpy as np
    >>> out = cutout(np.ones((8, 8, 1), "float32"), 4, seed=0).numpy()
    >>> 0 < int((out == 0).sum()) <= 16
    True
    """
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    # One draw for both coordinates: two ops of one seed in a traced function draw the same numbers.
    center = tf.random.uniform((2,), seed=seed) * tf.cast(shape[:2], tf.float32)
    center_y, center_x = tf.unstack(tf.cast(center, tf.int32))
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    half = size // 2
    inside = (
        (rows >= center_y - half)
        & (rows < center_y - half + size)
        & (cols >= center_x - half)
        & (cols < center_x - half + size)
    )
    return image * tf.cast(~inside, image.dtype)[:, :, None]


# `augment` takes the square's side as `cutout`, as every training function does, which hides the function.
_cutout_square = cutout


def augment(image, pad=0, flip=False, cutout=None, seed=None):
    """The training recipe of the ENAS reference code: a random shift, a random flip, cutout.

    Args:
        image: a `(height, width, channels)` image tensor.
        pad: pixels of zero padding before a random crop back to size
            (`random_crop`); 0 or `None`: no shift.
        flip: whether to flip the image left-right with probability 1/2.
        cutout: side of the square zeroed at a random place (`cutout`), or `None`.
        seed: seed of the random draws.

    Returns:
        The augmented image, same shape and dtype.

    Example:

    >>> import numpy as np
    >>> augment(np.ones((8, 8, 1), "float32"), pad=2, flip=True, cutout=4, seed=0).shape
    TensorShape([8, 8, 1])
    """
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    # Each op its own seed: ops of one seed in a traced function draw the same numbers.
    crop_seed, flip_seed, cutout_seed = (None, None, None) if seed is None else (seed, seed + 1, seed + 2)
    if pad:
        image = random_crop(image, pad, crop_seed)
    if flip:
        image = tf.image.random_flip_left_right(image, seed=flip_seed)
    if cutout:
        image = _cutout_square(image, cutout, cutout_seed)
    return image
