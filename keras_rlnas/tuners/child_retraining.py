"""The searched child trained alone: `ENASTuner.retrain`, from scratch or from the shared weights.

The search's trials hold children on the shared weights; a user retrains the
one they keep with the papers' final-training options (wider, longer, cutout,
drop-path, an auxiliary head), which `keras_rlnas.retrain` implements for every
space. `ChildRetraining` gives `ENASTuner` that method and the one option only a
search can give: starting the child from the supernet's weights for it.
"""

from keras_rlnas import retrain
from keras_rlnas.supernet import ChoiceSpace

# A child trained alone takes the reference code's minibatch size.
RETRAIN_BATCH_SIZE = 128


class ChildRetraining:
    """`retrain()` for `ENASTuner` (it reads the tuner's `space`, `supernet` and `seed`)."""

    def retrain(self, hp, x, y, epochs=10, batch_size=None, validation_data=None, filters=None, cutout=None,
                drop_path=None, auxiliary_weight=None, time_budget=None, callbacks=None, verbose=0,
                from_shared_weights=False, pad=None, flip=False):
        """Trains the child `hp` with the paper's final-training options, from scratch or from the shared weights.

        Args:
            hp: a `keras_tuner.HyperParameters` (or values dict) of the space.
            x, y: training arrays, or `x` an augmented `tf.data.Dataset` of batches.
            epochs: training epochs (one cosine cycle over them).
            batch_size: minibatch size (128, the reference code's, when `None`).
            validation_data: optional `(x, y)` or dataset passed to `fit`.
            filters: channels of the final network (the paper widens it:
                36 -> 96 macro, 20 -> 36 micro); the search's when `None`.
            cutout: side of the square cut out of each training image (arrays
                only), or `None`.
            drop_path: scheduled drop-path rate in the cells (micro only; the
                reference code's 0.4 when `None`, 0 for macro).
            auxiliary_weight: weight of the auxiliary head's loss (micro only;
                0.4 when `None`, 0 for macro).
            time_budget: seconds for the whole retraining, or `None`. The
                epoch count (at most `epochs`) and length are then chosen from
                the timed steps of a probe copy of the child; unless `epochs`
                caps them, the cosine schedule follows the clock, ending at its
                minimum at the budget, where training stops.
            callbacks: Keras callbacks for `fit`.
            verbose: `fit`'s verbosity.
            from_shared_weights: start the child from the supernet's current
                weights for it instead of a random initialisation (weight
                inheritance, `keras_rlnas.retrain.inherit_weights`). Needs
                the search's `filters`.
            pad: pixels of zero padding before a random crop back to size,
                shifting each training image (arrays only), or `None`.
            flip: flip training images left-right at random (arrays only;
                not for digits or characters, whose class a mirror changes).

        Returns:
            The trained `keras.Model` (class probabilities only: the auxiliary
            head is left out); `model.history` is `fit`'s history.

        See `keras_rlnas.retrain.retrain`, which serves every space. A
        user's own model (`ChoiceSpace`) is built afresh by its function and
        trained with its own compile settings; `filters`, `drop_path` and
        `auxiliary_weight` are options of the ENAS spaces only.
        """
        train = retrain.retrain_own_model if isinstance(self.space, ChoiceSpace) else retrain.retrain
        inherit_from = self._child_on_shared_weights(hp, filters) if from_shared_weights else None
        return train(
            self.space, hp, x, y, epochs=epochs, batch_size=batch_size or RETRAIN_BATCH_SIZE,
            validation_data=validation_data, filters=filters, cutout=cutout, pad=pad, flip=flip, drop_path=drop_path,
            auxiliary_weight=auxiliary_weight, time_budget=time_budget, callbacks=callbacks, seed=self.seed,
            verbose=verbose, inherit_from=inherit_from,
        )

    def _child_on_shared_weights(self, hp, filters):
        if self.supernet is None:
            raise ValueError("`from_shared_weights=True` needs the supernet's weights: run search() first.")
        width = getattr(self.space, "filters", None)
        if None not in (filters, width) and filters != width:
            raise ValueError(
                f"`from_shared_weights=True` starts the child from the supernet's {width}-filter weights; "
                f"filters={filters!r} would change their shapes. Leave `filters` unset."
            )
        return self.supernet.build_child(self.space.as_encoding(hp), compile=False)
