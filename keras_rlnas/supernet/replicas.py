"""Supernet steps on several devices: a `tf.distribute` strategy, each minibatch split across replicas.

A step's function runs once per replica (`run`); each replica takes its
contiguous share of the minibatch (`share`) and returns sums over its share
divided by the size of the whole minibatch, so that the replicas' results
add up (`summed`) to what one device computes on the whole minibatch. The
optimizer sums the replicas' gradients, as Keras's own `fit` does.
Without a strategy every function here is the identity.
"""

import tensorflow as tf


def replicas_in_sync():
    """How many replicas run the current step (1 outside a strategy)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def share(*batches):
    """This replica's contiguous share of each batch tensor, and the whole batch's size.

    Args:
        *batches: tensors whose first axis is the minibatch.

    Returns:
        `(shares, size)`: a list with one share per tensor, and the size of
        the whole minibatch as a float32 scalar.
    """
    size = tf.shape(batches[0])[0]
    count = replicas_in_sync()
    if count == 1:
        return list(batches), tf.cast(size, tf.float32)
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    per_replica = (size + count - 1) // count
    start = tf.minimum(tf.cast(replica, tf.int32) * per_replica, size)
    stop = tf.minimum(start + per_replica, size)
    return [batch[start:stop] for batch in batches], tf.cast(size, tf.float32)


def run(strategy, function, *args):
    """`function(*args)` on every replica of `strategy`; called directly when it is `None`."""
    if strategy is None:
        return function(*args)
    return strategy.run(function, args=args)


def summed(strategy, value):
    """The sum over replicas of a per-replica scalar (or nest of them)."""
    if strategy is None:
        return value
    return tf.nest.map_structure(lambda v: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), value)


def gathered(strategy, value):
    """The per-replica shares of a batch tensor, concatenated in replica order."""
    if strategy is None:
        return value
    return tf.concat(strategy.experimental_local_results(value), axis=0)


__all__ = ["gathered", "replicas_in_sync", "run", "share", "summed"]
