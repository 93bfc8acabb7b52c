"""What every ENAS supernet shares: compiled steps, optimizer, state, weight copy.

A supernet holds the weights of every candidate op of a space in one Keras
model (`keras_rlnas.supernet.model.SupernetModel`), which takes the
architecture as an int32 tensor, so one traced train step and one traced
eval step serve every architecture, and a step computes only the sampled
child. Under a `tf.distribute` strategy the variables are mirrored and each
step splits its minibatch across the replicas
(`keras_rlnas.supernet.replicas`).
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from keras_rlnas import _checks as checks
from keras_rlnas.layers.batch_norm import frozen_moving_statistics, recalibrated_moving_statistics
from keras_rlnas.layers.pooling import max_pool_gradient_recomputed
from keras_rlnas.supernet import replicas
from keras_rlnas.training import cosine_restart_learning_rate, nesterov_sgd


def _sparse_labels(labels):
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2 and labels.shape[-1] != 1:
        labels = tf.argmax(labels, axis=-1)
    return tf.reshape(tf.cast(labels, tf.int32), [-1])


def _correct(labels, logits):
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.reduce_sum(tf.cast(tf.equal(predictions, labels), tf.float32))


class Supernet:
    """Base of `MacroSupernet` and `MicroSupernet`.

    Args:
        space: the search space (`ENASMacro` / `ENASMicro`).
        learning_rate, min_learning_rate, restart_period, restart_multiplier:
            cosine warm restarts of the shared weights' learning rate, set per
            epoch by `set_epoch`.
        momentum: Nesterov momentum of the default optimizer.
        l2: L2 factor on the kernels of the sampled ops; `None` takes the space's.
        optimizer: a Keras optimizer replacing the default Nesterov SGD; its
            learning rate is still set by `set_epoch`, unless it is a
            `LearningRateSchedule`.
        eval_batch_statistics: `eval_step` normalises with the statistics of
            the batch, as the reference code does (the moving averages of
            shared weights fit no single architecture), without changing them.
        jit_compile: compile the steps with XLA; each batch size then gets its
            own trace (architectures still share it).
        dtype_policy: e.g. `"mixed_float16"` or `"mixed_bfloat16"` (`None`:
            the global policy); float16 adds dynamic loss scaling.
        distribution_strategy: a `tf.distribute.Strategy` (e.g.
            `tf.distribute.MirroredStrategy()` over one machine's GPUs): the
            variables are created in its scope and every step splits its
            minibatch across the replicas, summing their gradients, so a
            step computes what one device computes on the whole minibatch
            (batch statistics are each replica's own, as in Keras's `fit`).
    """

    model_class = None

    def __init__(
        self,
        space,
        learning_rate=0.05,
        min_learning_rate=0.0005,
        restart_period=10,
        restart_multiplier=2,
        momentum=0.9,
        l2=None,
        optimizer=None,
        eval_batch_statistics=True,
        jit_compile=False,
        dtype_policy=None,
        distribution_strategy=None,
    ):
        self.space = space
        self.schedule = dict(
            learning_rate=checks.positive_float("learning_rate", learning_rate),
            min_learning_rate=checks.non_negative_float("min_learning_rate", min_learning_rate),
            restart_period=checks.positive_int("restart_period", restart_period),
            restart_multiplier=checks.positive_int("restart_multiplier", restart_multiplier),
        )
        self.l2 = space.l2 if l2 is None else checks.non_negative_float("l2", l2)
        self.eval_batch_statistics = bool(eval_batch_statistics)
        self.jit_compile = bool(jit_compile)
        self.dtype_policy = dtype_policy
        if distribution_strategy is not None and not isinstance(distribution_strategy, tf.distribute.Strategy):
            raise TypeError(f"`distribution_strategy` must be a tf.distribute.Strategy, got {distribution_strategy!r}.")
        self.strategy = distribution_strategy
        with self.strategy.scope() if self.strategy else contextlib.nullcontext():
            self.model = self.model_class(space, l2=self.l2, dtype=dtype_policy)
            self.model.build_all()
            if optimizer is None:
                optimizer = nesterov_sgd(learning_rate, checks.fraction("momentum", momentum))
            # Without a policy of its own the network computes in the global one (`keras.mixed_precision`).
            policy = dtype_policy or keras.config.dtype_policy().name
            if policy == "mixed_float16" and not hasattr(optimizer, "inner_optimizer"):
                from keras.mixed_precision import LossScaleOptimizer

                optimizer = LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
        self.epoch = 0
        self.set_epoch(0)
        self.trace_counts = {"train": 0, "fair_train": 0, "eval": 0, "predict": 0, "recalibrate": 0, "count": 0}
        # Under XLA the batch size is part of the signature (XLA compiles per
        # shape anyway, and an unknown batch size inside a switch's gradient
        # breaks its compiler); without XLA one trace serves every batch size.
        images = tf.TensorSpec((None,) + tuple(space.input_shape), tf.float32)
        labels = tf.TensorSpec((None,), tf.int32)
        arch = tf.TensorSpec((space.encoding_length,), tf.int32)
        compile_options = dict(jit_compile=self.jit_compile, autograph=False)
        signatures = {
            "train": [images, labels, arch],
            "fair_train": [images, labels, tf.TensorSpec((None, space.encoding_length), tf.int32)],
            "eval": [images, labels, arch],
            "predict": [images, arch],
            "recalibrate": [images, arch],
            "count": [images, labels, arch],
        }
        if self.jit_compile:
            signatures = {name: None for name in signatures}
        self._train_function = tf.function(
            self._train, input_signature=signatures["train"], **compile_options
        )
        self._fair_train_function = tf.function(
            self._fair_train, input_signature=signatures["fair_train"], **compile_options
        )
        self._eval_function = tf.function(
            self._eval, input_signature=signatures["eval"], **compile_options
        )
        self._predict_function = tf.function(
            self._predict, input_signature=signatures["predict"], **compile_options
        )
        self._recalibrate_function = tf.function(
            self._recalibrate, input_signature=signatures["recalibrate"], **compile_options
        )
        self._count_function = tf.function(
            self._count_correct, input_signature=signatures["count"], **compile_options
        )

    @property
    def trace_count(self):
        """How many times the train, eval and predict steps were traced, in total."""
        return sum(self.trace_counts.values())

    def set_epoch(self, epoch):
        """Sets the learning rate of `epoch` (0-based) on the cosine warm restarts schedule.

        An optimizer given with its own `LearningRateSchedule` keeps it.
        """
        self.epoch = epoch
        self.set_learning_rate(cosine_restart_learning_rate(epoch, **self.schedule))

    def set_learning_rate(self, learning_rate):
        """Sets the optimizer's learning rate, unless it follows its own `LearningRateSchedule`."""
        try:
            self.optimizer.learning_rate = learning_rate
        except TypeError:  # Keras refuses to set the rate of an optimizer built on a schedule
            pass

    def arch_tensor(self, architecture):
        """An architecture (encoding, hyperparameters or mapping) as an int32 tensor."""
        if isinstance(architecture, tf.Tensor):
            return tf.cast(architecture, tf.int32)
        return tf.constant(self.space.as_encoding(architecture))

    def train_step(self, images, labels, arch):
        """One SGD step of the shared weights on the child `arch`.

        Args:
            images: a batch of images (any numeric dtype; cast to float32).
            labels: integer class labels (or one-hot rows).
            arch: the architecture: an encoding (array or int32 tensor),
                hyperparameters or a value mapping.

        Returns:
            `{"loss": ..., "accuracy": ...}`, scalar tensors (loss with L2).
        """
        return self._train_function(
            tf.cast(images, tf.float32), _sparse_labels(labels), self.arch_tensor(arch)
        )

    def fair_train_step(self, images, labels, archs):
        """One SGD step on the summed gradients of several children on the same minibatch.

        With `archs = space.fair_encodings()` every op of every op choice
        trains on the minibatch once: FairNAS's strict fairness (Chu et al.,
        2021), at `len(archs)` forward and backward passes per step. The
        weights every child uses (stem, head, shared projections) take the
        sum of the children's gradients, as in FairNAS.

        Args:
            images, labels: a minibatch, as for `train_step`.
            archs: an int32 array (or tensor) of encodings, one row per child.

        Returns:
            `{"loss": ..., "accuracy": ...}`, the children's means (scalar tensors).
        """
        archs = tf.cast(archs, tf.int32) if isinstance(archs, tf.Tensor) else tf.constant(archs, tf.int32)
        if archs.shape.rank != 2 or archs.shape[0] == 0 or archs.shape[1] != self.space.encoding_length:
            raise ValueError(
                f"`archs` must be a non-empty matrix of encodings of length {self.space.encoding_length}, "
                f"got shape {tuple(archs.shape)}."
            )
        return self._fair_train_function(tf.cast(images, tf.float32), _sparse_labels(labels), archs)

    def eval_step(self, images, labels, arch):
        """Accuracy of the child `arch` on a batch with the shared weights (a scalar tensor)."""
        return self._eval_function(
            tf.cast(images, tf.float32), _sparse_labels(labels), self.arch_tensor(arch)
        )

    def recalibrate(self, images, arch):
        """Sets the moving batch-norm statistics to those of child `arch` on `images`.

        BN recalibration (one forward pass over a calibration batch of
        training images): afterwards inference-mode scores and `build_child`
        copies use statistics of this child rather than the mix of every
        child the shared weights trained.
        """
        self._recalibrate_function(tf.cast(images, tf.float32), self.arch_tensor(arch))

    def evaluate(self, images, labels, arch, calibration_images=None, batch_size=256):
        """Accuracy of child `arch` on all of `images` with the shared weights.

        Args:
            images, labels: the scoring examples (NumPy arrays or tensors).
            arch: the architecture, as for `train_step`.
            calibration_images: training images for BN recalibration
                (`recalibrate`), after which the child is scored in inference
                mode; when `None` every scoring batch is normalised with its
                own statistics, as `eval_step` does.
            batch_size: scoring batch size.

        Returns:
            The accuracy, a Python float.
        """
        arch = self.arch_tensor(arch)
        total = int(len(images))
        if total < 1:
            raise ValueError("`images` is empty: there is nothing to score the child on.")
        if calibration_images is not None:
            self.recalibrate(calibration_images, arch)
        correct = 0.0
        for start in range(0, total, batch_size):
            batch_images = tf.cast(images[start : start + batch_size], tf.float32)
            batch_labels = _sparse_labels(labels[start : start + batch_size])
            if calibration_images is None:
                correct += float(self._eval_function(batch_images, batch_labels, arch)) * int(batch_labels.shape[0])
            else:
                correct += float(self._count_function(batch_images, batch_labels, arch))
        return correct / total

    def predict(self, images, arch):
        """Class probabilities of the child `arch` in inference mode (moving statistics)."""
        return self._predict_function(tf.cast(images, tf.float32), self.arch_tensor(arch))

    # Each step is traced once (trace_counts) and runs its replica function
    # on every replica; a replica's sums are divided by the whole minibatch's
    # size, so they add up across replicas.
    def _train(self, images, labels, arch):
        self.trace_counts["train"] += 1
        return replicas.summed(self.strategy, replicas.run(self.strategy, self._train_replica, images, labels, arch))

    def _train_replica(self, images, labels, arch):
        (images, labels), size = replicas.share(images, labels)
        loss, correct, gradients = self._child_gradients(images, labels, arch, size)
        self.optimizer.apply(gradients, self.model.trainable_variables)
        return {"loss": loss, "accuracy": correct / size}

    def _fair_train(self, images, labels, archs):
        self.trace_counts["fair_train"] += 1
        return replicas.summed(
            self.strategy, replicas.run(self.strategy, self._fair_train_replica, images, labels, archs)
        )

    def _fair_train_replica(self, images, labels, archs):
        (images, labels), size = replicas.share(images, labels)
        variables = self.model.trainable_variables
        count = tf.shape(archs)[0]

        # A loop, not one unrolled pass per child: the step is traced once
        # whatever the number of children.
        def add_child(index, loss_sum, correct_sum, *gradient_sums):
            loss, correct, gradients = self._child_gradients(images, labels, archs[index], size)
            # A weight no child reads has no gradient.
            gradient_sums = [
                total if gradient is None else tf.ensure_shape(total + tf.convert_to_tensor(gradient), total.shape)
                for total, gradient in zip(gradient_sums, gradients)
            ]
            return (index + 1, loss_sum + loss, correct_sum + correct, *gradient_sums)

        zeros = [tf.zeros_like(variable) for variable in variables]
        _, loss, correct, *gradients = tf.while_loop(
            lambda index, *_: index < count, add_child, (tf.constant(0), 0.0, 0.0, *zeros)
        )
        self.optimizer.apply(gradients, variables)
        children = tf.cast(count, tf.float32)
        return {"loss": loss / children, "accuracy": correct / (size * children)}

    def _child_gradients(self, images, labels, arch, size):
        """`(loss, correct, gradients)` of child `arch` on a replica's share of a minibatch of `size`."""
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape, max_pool_gradient_recomputed():
            logits, l2 = self.model.forward(images, arch, training=True)
            logits = tf.cast(logits, tf.float32)
            cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            loss = tf.reduce_sum(cross_entropy) / size + l2 / replicas.replicas_in_sync()
            scaled_loss = self.optimizer.scale_loss(loss)
        return loss, _correct(labels, logits), tape.gradient(scaled_loss, variables)

    def _eval(self, images, labels, arch):
        self.trace_counts["eval"] += 1
        return replicas.summed(self.strategy, replicas.run(self.strategy, self._eval_replica, images, labels, arch))

    def _eval_replica(self, images, labels, arch):
        (images, labels), size = replicas.share(images, labels)
        if self.eval_batch_statistics:
            with frozen_moving_statistics():
                logits, _ = self.model.forward(images, arch, batch_statistics=True)
        else:
            logits, _ = self.model.forward(images, arch)
        return _correct(labels, tf.cast(logits, tf.float32)) / size

    def _recalibrate(self, images, arch):
        self.trace_counts["recalibrate"] += 1
        # Every replica sees the whole calibration batch: its statistics are the batch's, as on one device.
        replicas.run(self.strategy, self._recalibrate_replica, images, arch)

    def _recalibrate_replica(self, images, arch):
        with recalibrated_moving_statistics():
            self.model.forward(images, arch, batch_statistics=True)

    def _count_correct(self, images, labels, arch):
        self.trace_counts["count"] += 1
        return replicas.summed(self.strategy, replicas.run(self.strategy, self._count_replica, images, labels, arch))

    def _count_replica(self, images, labels, arch):
        (images, labels), _ = replicas.share(images, labels)
        logits, _ = self.model.forward(images, arch)
        return _correct(labels, tf.cast(logits, tf.float32))

    def _predict(self, images, arch):
        self.trace_counts["predict"] += 1
        return replicas.gathered(self.strategy, replicas.run(self.strategy, self._predict_replica, images, arch))

    def _predict_replica(self, images, arch):
        (images,), _ = replicas.share(images)
        logits, _ = self.model.forward(images, arch)
        return tf.nn.softmax(tf.cast(logits, tf.float32))

    def copy_weights_to(self, child, values=None):
        """Copies the shared weights of a child's layers into `child`.

        Args:
            child: a model built by `space.build(hp)` / `space.build_child(...)`.
            values: optional architecture of `child`; when given it is checked
                to be a valid architecture of the space.

        Returns:
            `child`, whose layers now hold the supernet's weights: in inference
            mode it predicts as `predict(images, values)` does.
        """
        if values is not None:
            self.space.as_encoding(values)
        for layer in child.layers:
            if layer.weights:
                layer.set_weights(self.model.shared_weights(layer))
        return child

    def build_child(self, architecture, compile=True):
        """The standalone child of `architecture`, holding the shared weights."""
        child = self.space.build_child(architecture, compile=compile)
        return self.copy_weights_to(child)

    def get_state(self):
        """Shared weights, optimizer variables and epoch, as numpy arrays (for resume)."""
        return {
            "epoch": self.epoch,
            "model": [np.asarray(variable) for variable in self.model.variables],
            "optimizer": [np.asarray(variable) for variable in self.optimizer.variables],
        }

    def set_state(self, state):
        """Restores a `get_state()` of a supernet of the same space and options."""
        for key in ("model", "optimizer"):
            variables = self.model.variables if key == "model" else self.optimizer.variables
            if len(variables) != len(state[key]):
                raise ValueError(
                    f"The {key} state holds {len(state[key])} arrays, this supernet "
                    f"{len(variables)}: it comes from another space or options."
                )
            for variable, value in zip(variables, state[key]):
                variable.assign(value)
        self.set_epoch(state["epoch"])

    def save(self, filepath):
        """Writes `get_state()` to a `.npz` file."""
        state = self.get_state()
        arrays = {f"model_{i:05d}": value for i, value in enumerate(state["model"])}
        arrays.update({f"optimizer_{i:05d}": value for i, value in enumerate(state["optimizer"])})
        with open(filepath, "wb") as file:
            np.savez(file, epoch=np.asarray(state["epoch"]), **arrays)

    def load(self, filepath):
        """Restores a file written by `save`."""
        with np.load(filepath) as arrays:
            state = {"epoch": arrays["epoch"].item()}
            for key in ("model", "optimizer"):
                names = sorted(name for name in arrays.files if name.startswith(key + "_"))
                state[key] = [arrays[name] for name in names]
        self.set_state(state)
