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
    center_y = tf.random.uniform((), 0, height, dtype=tf.int32, seed=seed)
    center_x = tf.random.uniform((), 0, width, dtype=tf.int32, seed=seed)
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
