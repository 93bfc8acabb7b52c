"""TensorFlow's graph optimiser, Grappler, switched off while an ENAS search runs.

Grappler rewrites every traced function the first time it runs. A
supernet's steps are large graphs (every candidate op of every layer behind
`tf.switch_case`: about 50,000 nodes in the micro supernet's train step),
and on a CPU its passes hold up the search's first minibatch for tens of
seconds.
TensorFlow switches Grappler only for the whole process, so the setting is
restored when the search returns: a child trained after it gets the passes.
"""

import contextlib

import tensorflow as tf

OPTION = "disable_meta_optimizer"


@contextlib.contextmanager
def switched_off():
    """Runs the block with Grappler off (process-wide), then restores the setting it found.

    Example:

    >>> with switched_off():
    ...     pass  # a supernet's first steps, without the graph passes
    """
    before = tf.config.optimizer.get_experimental_options().get(OPTION, False)
    tf.config.optimizer.set_experimental_options({OPTION: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({OPTION: before})


__all__ = ["switched_off"]
