"""Training settings of ENAS (Pham et al., 2018): SGD with cosine warm restarts.

The learning rate follows the reference code: it changes once per epoch,
from `learning_rate` down to `min_learning_rate` over a period of
`restart_period` epochs, then restarts with a period `restart_multiplier`
times longer (SGDR, Loshchilov & Hutter, 2017).
"""

import math

import keras
from keras import ops

from keras_rlnas import _checks as checks


def cosine_restart_learning_rate(
    epoch, learning_rate=0.05, min_learning_rate=0.0005, restart_period=10, restart_multiplier=2
):
    """The learning rate of epoch `epoch` (0-based) under cosine warm restarts.

    Args:
        epoch: number of completed epochs; fractions are floored.
        learning_rate: the rate at the start of every period.
        min_learning_rate: the rate the cosine decays to at the end of a period.
        restart_period: length of the first period in epochs (T0).
        restart_multiplier: each period is this many times longer than the last (Tmul).

    Returns:
        A Python float.

    Example:

    >>> cosine_restart_learning_rate(0)
    0.05
    >>> round(cosine_restart_learning_rate(5), 5)
    0.02525
    >>> cosine_restart_learning_rate(10)  # restart; the next period lasts 20 epochs
    0.05
    """
    epoch = int(math.floor(epoch))
    period = float(restart_period)
    while epoch >= period:
        epoch -= period
        period *= restart_multiplier
    progress = epoch / period
    return min_learning_rate + 0.5 * (learning_rate - min_learning_rate) * (
        1.0 + math.cos(math.pi * progress)
    )


@keras.saving.register_keras_serializable(package="keras_rlnas")
class CosineWarmRestarts(keras.optimizers.schedules.LearningRateSchedule):
    """`cosine_restart_learning_rate` as a Keras schedule over optimizer steps.

    Args:
        steps_per_epoch: optimizer steps in one epoch; the rate changes once
            per epoch, as in the ENAS reference code.
        learning_rate, min_learning_rate, restart_period, restart_multiplier:
            as in `cosine_restart_learning_rate`.

    Example:

    >>> schedule = CosineWarmRestarts(steps_per_epoch=100)
    >>> round(float(schedule(500)), 5)
    0.02525
    """

    def __init__(
        self,
        steps_per_epoch,
        learning_rate=0.05,
        min_learning_rate=0.0005,
        restart_period=10,
        restart_multiplier=2,
    ):
        self.steps_per_epoch = int(steps_per_epoch)
        self.learning_rate = float(learning_rate)
        self.min_learning_rate = float(min_learning_rate)
        self.restart_period = int(restart_period)
        self.restart_multiplier = int(restart_multiplier)

    def __call__(self, step):
        epoch = ops.floor(ops.cast(step, "float32") / self.steps_per_epoch)
        period = ops.cast(self.restart_period, "float32")
        if self.restart_multiplier == 1:
            cycle = ops.floor(epoch / period)
            start = cycle * period
        else:
            multiplier = float(self.restart_multiplier)
            # Periods T0 * m^k start at epoch T0 * (m^k - 1) / (m - 1).
            # The small offset keeps float error from flooring a period start to the period before.
            cycle = ops.floor(
                ops.log1p(epoch * (multiplier - 1.0) / period) / math.log(multiplier) + 1e-6
            )
            start = period * (ops.power(multiplier, cycle) - 1.0) / (multiplier - 1.0)
            period = period * ops.power(multiplier, cycle)
        progress = (epoch - start) / period
        span = self.learning_rate - self.min_learning_rate
        return self.min_learning_rate + 0.5 * span * (1.0 + ops.cos(math.pi * progress))

    def get_config(self):
        return dict(
            steps_per_epoch=self.steps_per_epoch,
            learning_rate=self.learning_rate,
            min_learning_rate=self.min_learning_rate,
            restart_period=self.restart_period,
            restart_multiplier=self.restart_multiplier,
        )


@keras.saving.register_keras_serializable(package="keras_rlnas")
class NesterovSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD(nesterov=True)` with one fused update op per variable.

    The update is the same as Keras SGD's; on the TensorFlow backend it runs as
    a single `ResourceApplyKerasMomentum` kernel instead of six ops, which
    matters for a supernet holding thousands of variables.

    Args:
        learning_rate: a float or a `LearningRateSchedule`.
        momentum: the Nesterov momentum.
        **kwargs: other `keras.optimizers.SGD` arguments.
    """

    def __init__(self, learning_rate=0.05, momentum=0.9, **kwargs):
        kwargs["nesterov"] = True
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        if keras.backend.backend() != "tensorflow" or not self.momentum:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        momentum = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle,
            accum=momentum.handle,
            lr=tf.cast(learning_rate, variable.dtype),
            grad=tf.cast(gradient, variable.dtype),
            momentum=tf.cast(self.momentum, variable.dtype),
            use_nesterov=True,
        )

    def get_config(self):
        config = super().get_config()
        config.pop("nesterov", None)
        return config


def nesterov_sgd(learning_rate=0.05, momentum=0.9):
    """SGD with Nesterov momentum, the ENAS optimizer for shared and child weights."""
    return NesterovSGD(learning_rate=learning_rate, momentum=momentum)


class TrainingOptions:
    """The optimizer settings an ENAS space compiles its children with.

    Args:
        learning_rate: maximum rate of the cosine schedule.
        min_learning_rate: minimum rate of the cosine schedule.
        restart_period: first period of the schedule, in epochs.
        restart_multiplier: growth of each period.
        momentum: Nesterov momentum.
        steps_per_epoch: optimizer steps per epoch; without it the child
            is compiled with the constant rate `learning_rate`.
    """

    def __init__(
        self,
        learning_rate=0.05,
        min_learning_rate=0.0005,
        restart_period=10,
        restart_multiplier=2,
        momentum=0.9,
        steps_per_epoch=None,
    ):
        self.learning_rate = checks.positive_float("learning_rate", learning_rate)
        self.min_learning_rate = checks.non_negative_float("min_learning_rate", min_learning_rate)
        if self.min_learning_rate > self.learning_rate:
            raise ValueError(
                f"`min_learning_rate` ({min_learning_rate!r}) must not exceed "
                f"`learning_rate` ({learning_rate!r})."
            )
        self.restart_period = checks.positive_int("restart_period", restart_period)
        self.restart_multiplier = checks.positive_int("restart_multiplier", restart_multiplier)
        self.momentum = checks.fraction("momentum", momentum)
        self.steps_per_epoch = (
            None
            if steps_per_epoch is None
            else checks.positive_int("steps_per_epoch", steps_per_epoch)
        )

    def schedule_arguments(self):
        return dict(
            learning_rate=self.learning_rate,
            min_learning_rate=self.min_learning_rate,
            restart_period=self.restart_period,
            restart_multiplier=self.restart_multiplier,
        )

    def compile(self, model, auxiliary_weight=0.0):
        """Compiles `model` with Nesterov SGD, the schedule and sparse cross-entropy.

        With `auxiliary_weight`, `model` has two outputs (class probabilities,
        auxiliary probabilities) and the second one's loss counts that much.
        """
        if self.steps_per_epoch is None:
            learning_rate = self.learning_rate
        else:
            learning_rate = CosineWarmRestarts(self.steps_per_epoch, **self.schedule_arguments())
        optimizer = nesterov_sgd(learning_rate, self.momentum)
        if auxiliary_weight:
            model.compile(
                optimizer=optimizer,
                loss=["sparse_categorical_crossentropy"] * 2,
                loss_weights=[1.0, float(auxiliary_weight)],
                metrics=[["accuracy"], []],
            )
        else:
            model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model
