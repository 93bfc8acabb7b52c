"""The Keras model of a supernet: every candidate layer of a space, picked per step by the architecture.

The architecture is an int32 tensor input (the space's `encode`); `switch`
and `cond` compute only the sampled branch, so one traced step serves every
architecture. `keras_rlnas.supernet.base.Supernet` trains and scores it.
"""

import tensorflow as tf
from keras import Model


def regularization(block, l2):
    """`l2` times the sum of squares of `block`'s kernels, a float32 scalar tensor."""
    kernels = [weight for weight in block.trainable_weights if "kernel" in weight.name]
    if not l2 or not kernels:
        return tf.constant(0.0)
    return l2 * tf.add_n(
        [tf.reduce_sum(tf.square(tf.cast(kernel, tf.float32))) for kernel in kernels]
    )


class SupernetModel(Model):
    """A Keras model holding every candidate layer of a space, by layer name.

    Subclasses create the layers with the space's factories, register them
    with `add_block`, and implement `forward`. While `build_all` runs, every
    branch of `switch` and `cond` is computed (eagerly, on one image) so that
    all variables exist before any tracing.
    """

    def __init__(self, space, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.space = space
        self.l2 = l2
        self.blocks = {}
        self._building = False

    def add_block(self, layer):
        """Registers `layer` under its name and returns it."""
        if layer.name in self.blocks:
            raise ValueError(f"Two supernet layers are named {layer.name!r}.")
        self.blocks[layer.name] = layer
        return layer

    def shared_weights(self, child_layer):
        """The weights `child_layer` (a layer of a child) takes from this supernet."""
        source = self.blocks.get(child_layer.name)
        if source is None:
            raise ValueError(f"The supernet has no layer named {child_layer.name!r}.")
        if hasattr(source, "weights_for"):
            return source.weights_for(child_layer)
        return source.get_weights()

    def forward(self, images, arch, training=False, batch_statistics=None):
        """The logits of architecture `arch` on `images`, and its L2 penalty.

        Args:
            images: a float batch of images.
            arch: the int32 encoding of the architecture.
            training: training mode (dropout, batch-norm updates).
            batch_statistics: normalise with batch statistics; defaults to
                `training`.

        Returns:
            `(logits, l2)`: float32 logits and the sampled ops' L2 penalty.
        """
        raise NotImplementedError

    def call(self, inputs, training=False):
        images, arch = inputs
        logits, _ = self.forward(images, arch, training=training)
        return tf.nn.softmax(logits)

    def build_all(self):
        """Creates every variable by running every branch once, eagerly."""
        images = tf.zeros((1,) + tuple(self.space.input_shape))
        arch = tf.zeros((self.space.encoding_length,), tf.int32)
        self._building = True
        try:
            self.forward(images, arch, training=False)
        finally:
            self._building = False
        self.built = True

    def switch(self, index, branches):
        """`branches[index]()`, computing only that branch."""
        if self._building:
            return [branch() for branch in branches][0]
        return tf.switch_case(index, branches)

    def cond(self, predicate, true_branch, false_branch):
        """`true_branch()` if `predicate` else `false_branch()`, computing one of them."""
        if self._building:
            return true_branch()
        return tf.cond(predicate, true_branch, false_branch)

    def branch(self, block, inputs, training):
        """A branch applying `block`: returns `(output, L2 penalty of block)`."""
        return lambda: (block(inputs, training=training), regularization(block, self.l2))


__all__ = ["SupernetModel", "regularization"]
