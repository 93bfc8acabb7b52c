"""Few-shot supernets: sub-supernets split from a trained one-shot supernet.

One set of shared weights trained for every child fits some children better
than others. In the macro space the one-shot weights favour children with
many convolutions: on 24 children that span the space, the Kendall tau of
the recalibrated shared score with a child's conv count is about +0.7,
against +0.1 for standalone training. Few-shot NAS (Zhao et al. 2021) splits
the supernet into sub-supernets, each a copy of the trained weights that
goes on training only on the children of its own group, and scores every
child on its own group's copy. The original splits on one decision (layer
0's op); that bias runs across all layers, so `ConvCountGroups` splits by how
many of a child's ops are convolutions instead.

Measured (`benchmarks/enas_few_shot.py`, four macro supernets, 24 children,
three sub-supernets of 3 epochs each): the split weakens the conv bias only a
little (tau with conv count +0.67 -> +0.59 on average) and ranks about as
the one-shot weights do: tau against standalone training +0.183 against
+0.160, a difference of +0.02 (90 % interval -0.10 .. +0.15 over the four
supernets). It is no tuner's default; it is here to try on other spaces.
"""

import contextlib
import math

import numpy as np

from keras_rlnas import _checks as checks
from keras_rlnas.spaces import ENASMacro, ENASMicro

# Peak learning rate and epochs of each sub-supernet's training (the measured setting).
FEW_SHOT_LEARNING_RATE = 0.02
FEW_SHOT_EPOCHS = 3


def op_names(space, encoding):
    """The names of a child's ops (macro: one per layer; micro: two per node, every cell)."""
    if isinstance(space, ENASMacro):
        op_indices, _ = space.parse(encoding)
        return [space.OPS[op] for op in op_indices]
    if isinstance(space, ENASMicro):
        return [
            space.OPS[op]
            for nodes in space.parse(encoding).values()
            for pairs in nodes
            for _, op in pairs
        ]
    raise TypeError(f"`space` must be an ENASMacro or ENASMicro space, got {type(space).__name__}.")


class ConvCountGroups:
    """Groups children by how many of their ops are convolutions.

    Args:
        space: an `ENASMacro` or `ENASMicro` space.
        bounds: increasing upper bounds of every group but the last: a child
            with `c` convolutions is in group `i`, the first with
            `c <= bounds[i]` (the last group holds the rest). `None` cuts the
            range from 0 to the number of ops into three equal parts (6 macro
            layers: at most 2, 3 to 4, 5 or 6 convolutions).

    Example:

    >>> from keras_rlnas.spaces import ENASMacro
    >>> groups = ConvCountGroups(ENASMacro((8, 8, 1), 3, num_layers=6))
    >>> groups.bounds, len(groups)
    ((2, 4), 3)
    """

    def __init__(self, space, bounds=None):
        count = len(op_names(space, space.random_encoding(0)))
        if bounds is None:
            bounds = sorted({count // 3, (2 * count) // 3})  # fewer groups for tiny spaces
        bounds = tuple(bounds)
        if not bounds or any(
            not isinstance(b, (int, np.integer)) or not 0 <= b < count for b in bounds
        ) or list(bounds) != sorted(set(bounds)):
            raise ValueError(
                f"`bounds` must be increasing integers from 0 to {count - 1} (the space's children "
                f"have {count} ops), got {bounds!r}."
            )
        self.space, self.bounds = space, tuple(int(b) for b in bounds)

    def __len__(self):
        return len(self.bounds) + 1

    def __call__(self, encoding):
        convs = sum("conv" in name for name in op_names(self.space, encoding))
        return int(np.searchsorted(self.bounds, convs))

    def get_config(self):
        return {"bounds": list(self.bounds)}


class FewShotSupernets:
    """One sub-supernet per group of children, each split from the same trained weights.

    The sub-supernets share the supernet's model: each is a saved state
    (`Supernet.get_state`) loaded when one of its children is trained or
    scored, so a group costs memory, not another traced model.

    Args:
        supernet: a trained `Supernet` (its weights are the split's start).
        group_of: a callable from an encoding to its group (any hashable),
            e.g. `ConvCountGroups(space)`.

    Example:

    >>> import numpy as np
    >>> from keras_rlnas.spaces import ENASMacro
    >>> from keras_rlnas.supernet import MacroSupernet
    >>> space = ENASMacro((8, 8, 1), num_classes=3, num_layers=3, filters=4)
    >>> net = MacroSupernet(space)
    >>> x, y = np.random.rand(8, 8, 8, 1), np.arange(8) % 3
    >>> groups = ConvCountGroups(space)
    >>> pool = [space.random_encoding(seed) for seed in range(200)]
    >>> sub_supernets = FewShotSupernets(net, groups)
    >>> sub_supernets.train(iter([(x[:4], y[:4]), (x[4:], y[4:])] * 10), pool, steps=3)
    >>> sorted(sub_supernets.groups) == sorted({groups(encoding) for encoding in pool})
    True
    >>> score = sub_supernets.evaluate(x, y, pool[0], calibration_images=x)
    >>> 0.0 <= score <= 1.0
    True
    """

    def __init__(self, supernet, group_of):
        if not callable(group_of):
            raise TypeError(f"`group_of` must be a callable from an encoding to a group, got {group_of!r}.")
        self.supernet, self.group_of = supernet, group_of
        self.states = {}

    @property
    def groups(self):
        """The groups that have a sub-supernet."""
        return list(self.states)

    def train(
        self,
        training_batches,
        pool,
        steps,
        learning_rate=FEW_SHOT_LEARNING_RATE,
        seed=0,
    ):
        """Splits the supernet: one sub-supernet per group of `pool`, each trained `steps` steps.

        Every sub-supernet starts from the supernet's current weights and
        trains on children of its own group drawn uniformly from `pool`, one
        per minibatch, with a cosine learning rate from `learning_rate` down
        to a hundredth of it. The supernet is left as it was.

        Args:
            training_batches: an iterator of `(images, labels)` minibatches;
                `steps` per group are drawn.
            pool: encodings to draw each group's children from (random
                encodings of the space; every group to score needs members).
            steps: training steps per sub-supernet.
            learning_rate: the schedule's peak.
            seed: seeds the draw of children.
        """
        steps = checks.positive_int("steps", steps)
        learning_rate = checks.positive_float("learning_rate", learning_rate)
        members = {}
        for encoding in pool:
            members.setdefault(self.group_of(encoding), []).append(encoding)
        if not members:
            raise ValueError("`pool` is empty: there is no child to train a sub-supernet on.")
        rng = np.random.default_rng(seed)
        base = self.supernet.get_state()
        try:
            for group in sorted(members, key=repr):
                self.supernet.set_state(base)
                for step in range(steps):
                    cosine = 0.5 * (1 + math.cos(math.pi * step / steps))
                    self.supernet.optimizer.learning_rate = learning_rate * (0.01 + 0.99 * cosine)
                    try:
                        images, labels = next(training_batches)
                    except StopIteration:
                        raise ValueError(
                            f"`training_batches` ran out at step {step} of group {group!r} (steps={steps})."
                        ) from None
                    children = members[group]
                    result = self.supernet.train_step(images, labels, children[rng.integers(len(children))])
                # A NaN loss stays NaN, so the last step tells.
                if not np.isfinite(float(result["loss"])):
                    raise FloatingPointError(
                        f"The sub-supernet of group {group!r} diverged: training loss {float(result['loss'])} "
                        f"(learning_rate={learning_rate}); the supernet's own weights are kept."
                    )
                self.states[group] = self.supernet.get_state()
        finally:
            self.supernet.set_state(base)

    @contextlib.contextmanager
    def weights_for(self, arch):
        """Context in which the supernet holds the sub-supernet of `arch`'s group.

        The supernet's own weights are restored afterwards.

        Raises:
            KeyError: `arch`'s group has no sub-supernet (none of `train`'s
                pool was in it).
        """
        encoding = self.supernet.space.as_encoding(arch)
        group = self.group_of(encoding)
        if group not in self.states:
            raise KeyError(
                f"No sub-supernet for group {group!r} of this child: `train`'s pool had none of it "
                f"(groups: {self.groups})."
            )
        base = self.supernet.get_state()
        self.supernet.set_state(self.states[group])
        try:
            yield self.supernet
        finally:
            self.supernet.set_state(base)

    def evaluate(self, images, labels, arch, calibration_images=None, batch_size=256):
        """Accuracy of child `arch` on its own group's sub-supernet (`Supernet.evaluate`'s arguments)."""
        with self.weights_for(arch) as supernet:
            return supernet.evaluate(images, labels, arch, calibration_images, batch_size)
