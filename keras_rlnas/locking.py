"""`synchronized`: Keras Tuner's oracle lock, free again before an error leaves the oracle."""

import functools

import keras_tuner


def synchronized(method):
    """Like `keras_tuner.synchronized`, but the lock is released when `method` raises.

    Keras Tuner's decorator releases an oracle's lock only when the method
    returns: one that raises leaves it held, and the next call from another
    thread (a chief's gRPC server, a second tuner) waits forever. Here
    `method` runs under that same lock, so it still excludes every method
    Keras Tuner synchronizes, and its exception is raised again once the lock
    is free. Nested calls from the same thread do not take the lock twice, as
    with Keras Tuner's decorator.

    Args:
        method: an oracle method (its first argument is the oracle).

    Returns:
        The wrapped method.

    Example:

    ```python
    class MyOracle(keras_tuner.Oracle):
        @keras_rlnas.locking.synchronized
        def update_trial(self, trial_id, metrics, step=0):
            return super().update_trial(trial_id, metrics, step=step)  # may raise
    ```
    """

    # Same name as `method`: Keras Tuner's decorator converts the old
    # `end_trial(trial_id, status)` signature by the function's name.
    @functools.wraps(method)
    def capturing(*args, **kwargs):
        try:
            return method(*args, **kwargs), None
        except BaseException as error:  # noqa: BLE001 - raised again below, outside the lock.
            return None, error

    locked = keras_tuner.synchronized(capturing)

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        result, error = locked(*args, **kwargs)
        if error is not None:
            raise error
        return result

    return wrapper
