"""The children a ranking benchmark compares: chosen to span the space, and described.

`stratified_children` picks children across the bins of two complexity
features, so rare corners of the space (all pooling, no skips) are in;
`traits`, `features` and `summary` say what a child is made of.
"""

import numpy as np

import keras_rlnas
from keras_rlnas.supernet.few_shot import op_names


def make_space(kind, layers, filters, input_shape=(28, 28, 1), num_classes=10):
    """The benchmark's space (`--space`, `--layers`, `--filters`); Fashion-MNIST's shape by default."""
    if kind == "macro":
        return keras_rlnas.ENASMacro(input_shape, num_classes, num_layers=layers, filters=filters)
    return keras_rlnas.ENASMicro(input_shape, num_classes, num_cells=layers, filters=filters)


def traits(space, encoding):
    """`{trait: count}`: what a child is made of.

    Each op's count; for macro children also their 5 x 5 kernels, pools in
    the first third of the layers and skips (micro cells need nothing more:
    identity is one of their ops).
    """
    names = op_names(space, encoding)
    counts = {name: names.count(name) for name in space.OPS}
    if isinstance(space, keras_rlnas.ENASMacro):
        counts["5x5 kernels"] = sum("5x5" in name for name in names)
        counts["early pools"] = sum("pool" in name for name in names[: max(1, len(names) // 3)])
        counts["skips"] = features(space, encoding)[1]
    return counts


def features(space, encoding):
    """Two complexity features of a child: (conv ops, skip connections).

    Macro: convolutions among the layer ops (the rest are pools) and skip bits
    set. Micro: separable convolutions among the node ops and identity ops.
    """
    names = op_names(space, encoding)
    if isinstance(space, keras_rlnas.ENASMacro):
        _, skips = space.parse(encoding)
        return sum("conv" in op for op in names), sum(len(sources) for sources in skips)
    return sum("conv" in op for op in names), sum(op == "identity" for op in names)


def feature_names(space):
    return ("convs", "skips") if isinstance(space, keras_rlnas.ENASMacro) else ("convs", "ids")


def summary(space, encoding):
    """A short description of a child's ops.

    Macro: the layer ops in order, e.g. `c3 s5 mp c5 ap s3`; micro: op counts
    per cell, e.g. `N:5id,2s3,1s5,2mp R:...`.
    """
    short = {
        "conv3x3": "c3",
        "conv5x5": "c5",
        "sepconv3x3": "s3",
        "sepconv5x5": "s5",
        "avgpool3x3": "ap",
        "maxpool3x3": "mp",
        "identity": "id",
    }
    if isinstance(space, keras_rlnas.ENASMacro):
        op_indices, _ = space.parse(encoding)
        return " ".join(short[space.OPS[op]] for op in op_indices)
    parts = []
    for group, nodes in space.parse(encoding).items():
        ops = [space.OPS[op] for pairs in nodes for _, op in pairs]
        counts = {name: ops.count(name) for name in space.OPS if ops.count(name)}
        parts.append(
            group[0].upper()
            + ":"
            + ",".join(f"{count}{short[name]}" for name, count in counts.items())
        )
    return " ".join(parts)


def stratified_children(space, count, pool_size, rng):
    """`count` distinct encodings spread over the bins of two complexity features.

    Draws `pool_size` random encodings, cuts each feature's observed range
    into equal-width bins (4 x 6 bins for 16 or more children, 2 x 3 below),
    then takes one child per non-empty bin in a random bin order, round after
    round, until `count` are taken.

    Returns:
        `(encodings, bins)`: the chosen encodings and how many bins were non-empty.
    """
    pool = {}
    for _ in range(pool_size):
        encoding = space.random_encoding(int(rng.integers(2**31)))
        pool.setdefault(encoding.tobytes(), encoding)
    encodings = list(pool.values())
    values = np.array([features(space, encoding) for encoding in encodings])
    bins_per_feature = (6, 4) if count >= 16 else (3, 2)
    cells = np.zeros(len(encodings), int)
    for column, bins in enumerate(bins_per_feature):
        low, high = values[:, column].min(), values[:, column].max() + 1
        index = np.minimum(((values[:, column] - low) * bins) // max(high - low, 1), bins - 1)
        cells = cells * bins + index
    members = {
        cell: list(rng.permutation(np.flatnonzero(cells == cell))) for cell in np.unique(cells)
    }
    chosen = []
    while len(chosen) < count and any(members.values()):
        for cell in rng.permutation(list(members)):
            if members[cell] and len(chosen) < count:
                chosen.append(encodings[members[cell].pop()])
    return chosen, len(members)
