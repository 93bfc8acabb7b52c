"""The shared-weight supernet of any model built with `LayerChoice` / `InputChoice`.

The network is the user's model built once with every candidate
(`ChoiceSpace`). A step runs it inside an `architecture_scope`: each choice
layer reads its decision from the int32 architecture tensor and computes
only the chosen candidate, so one traced step serves every architecture, as
in the macro and micro supernets.
"""

import contextlib

import keras
import tensorflow as tf

from keras_rlnas.layers.batch_norm import (
    BatchNorm,
    fused_call,
    moving_statistics_frozen,
    moving_statistics_momentum,
)
from keras_rlnas.layers.choice import InputChoice, LayerChoice
from keras_rlnas.layers.choice_context import architecture_scope
from keras_rlnas.supernet.base import Supernet
from keras_rlnas.supernet.custom_space import ChoiceSpace
from keras_rlnas.supernet.model import SupernetModel

# Probabilities are clipped before the log, as Keras's cross-entropy on probabilities does.
PROBABILITY_FLOOR = 1e-7


def _located_layers(model, path=()):
    """`(path, layer)` for every layer of `model`, nested models and the candidates of choices included.

    A path names the nested models around a layer, as in a child: the
    candidates of a choice sit where the choice does.
    """
    for layer in getattr(model, "layers", ()):
        yield path, layer
        if isinstance(layer, LayerChoice):
            for candidate in layer.candidates:
                yield path, candidate
                yield from _located_layers(candidate, path + (candidate.name,))
        else:
            yield from _located_layers(layer, path + (layer.name,))


def _unique_layer_index(network, space_name):
    """`{path + (name,): layer}` of `network`'s layers, or a `ValueError` where two layers would share a path.

    A child's layers get their weights by name within the nested models
    around them, so two candidates named alike would swap weights.
    """
    index = {}
    for path, layer in _located_layers(network):
        if isinstance(layer, LayerChoice):
            continue
        key = path + (layer.name,)
        held = index.setdefault(key, layer)
        if held is layer or not layer.weights:
            continue
        if not held.weights:  # a weightless namesake gives a child nothing to copy
            index[key] = layer
        else:
            raise ValueError(
                f"Two different layers of {space_name!r} are named {'/'.join(key)!r} (e.g. candidates of a "
                "LayerChoice built by one helper with a fixed name): a child's layers take the shared weights by "
                "name, so each layer needs a name of its own."
            )
    return index


def _layers(model):
    """Every layer of `model`: nested models and the candidates of choices included."""
    return [layer for _, layer in _located_layers(model)]


def _any(flags):
    """The OR of Python booleans and bool scalar tensors, kept a Python bool when it can be."""
    flags = [flag for flag in flags if flag is not False]
    if not flags:
        return False
    if any(flag is True for flag in flags):
        return True
    return flags[0] if len(flags) == 1 else tf.reduce_any(tf.stack(flags))


def liveness_plan(network):
    """The nodes of a functional `network` from its outputs back: `(operation, input ids, output ids)`.

    `None` for a model that is not a graph of layers (a subclassed model):
    then every choice is computed on every step.
    """
    nodes_by_depth = getattr(network, "_nodes_by_depth", None)
    if not nodes_by_depth:
        return None
    plan = []
    for depth in sorted(nodes_by_depth):  # depth 0 holds the output nodes; consumers come first
        for node in nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                plan.append((node.operation, [id(t) for t in node.input_tensors], [id(t) for t in node.outputs]))
    return plan


def live_choices(plan, outputs, arch, offsets):
    """`{LayerChoice name: bool}`: whether its output reaches `outputs` in architecture `arch`.

    A tensor is live when a live node reads it; an `InputChoice` node reads
    only the candidates its slots pick. Values are Python booleans where the
    graph decides alone, bool scalar tensors where the architecture does.
    """
    live = {id(t): True for t in outputs}
    choices = {}
    for operation, inputs, node_outputs in plan:
        node_live = _any([live.get(t, False) for t in node_outputs])
        if isinstance(operation, LayerChoice):  # a choice called twice is live if either call is
            choices[operation.name] = _any([choices.get(operation.name, False), node_live])
        if node_live is False:
            continue
        for position, tensor in enumerate(inputs):
            read = node_live
            if isinstance(operation, InputChoice):
                picked = _any([tf.equal(arch[offsets[(operation.name, slot)]], position) for slot in range(operation.n_chosen)])
                read = picked if node_live is True else tf.logical_and(node_live, picked)
            live[tensor] = _any([live.get(tensor, False), read])
    return choices


@contextlib.contextmanager
def _scoring_modes(network, training):
    """Keras layers of `network` behave as in a step of the base supernet while it is traced.

    A supernet scores with batch statistics (`training=True`) but must not
    drop units then, nor move Keras `BatchNormalization` statistics inside
    `frozen_moving_statistics()`; inside `recalibrated_moving_statistics()`
    they take the batch's. Those layers also normalise with the fused kernel
    then (`fused_call`): the element-wise ops of Keras's normalisation and
    of its gradient cost more than the convolutions in a small CNN. The
    layers read these attributes when a step is traced, so setting them
    around the trace bakes them into it.
    """
    saved, installed = [], []
    for layer in _layers(network):
        if isinstance(layer, keras.layers.Dropout) and not training:
            saved.append((layer, "rate", layer.rate))
            layer.rate = 0.0
        elif isinstance(layer, keras.layers.BatchNormalization) and not isinstance(layer, BatchNorm):
            momentum = 1.0 if moving_statistics_frozen() else moving_statistics_momentum(layer.momentum)
            saved.append((layer, "momentum", layer.momentum))
            layer.momentum = momentum
            if "call" not in vars(layer):
                layer.call = fused_call(layer)
                installed.append(layer)
    try:
        yield
    finally:
        for layer, attribute, value in saved:
            setattr(layer, attribute, value)
        for layer in installed:
            del layer.call


class ChoiceSupernetModel(SupernetModel):
    """The network of a `ChoiceSpace`, run on an architecture tensor.

    Args:
        space: a `ChoiceSpace`.
        l2: unused: the network's own regularizers apply, to the chosen candidates only.
        dtype: unused: the build function sets its layers' dtypes.
    """

    def __init__(self, space, l2=0.0, dtype=None, **kwargs):
        if not isinstance(space, ChoiceSpace):
            raise TypeError(f"ChoiceSupernet needs a ChoiceSpace, got {space!r}.")
        super().__init__(space, l2=0.0, name=f"{space.name}_supernet", **kwargs)
        # Its own network: the variables are created in the supernet's distribution scope.
        self.network = space.build_network()
        self._plan = liveness_plan(self.network)
        self._layer_index = _unique_layer_index(self.network, space.name)
        candidate_weights = {
            id(weight)
            for layer in _layers(self.network)
            if isinstance(layer, LayerChoice)
            for candidate in layer.candidates
            for weight in candidate.trainable_weights
        }
        # Regularised weights outside the choices: their penalty applies to every child.
        self._always_regularised = [
            weight
            for weight in self.network.trainable_weights
            if getattr(weight, "regularizer", None) is not None and id(weight) not in candidate_weights
        ]

    def forward(self, images, arch, training=False, batch_statistics=None):
        normalise_with_batch = training if batch_statistics is None else batch_statistics
        live = None
        if self._plan is not None and not self._building:
            live = live_choices(self._plan, self.network.outputs, arch, self.space.offsets)
        with architecture_scope(arch, self.space.offsets, building=self._building, live=live) as scope:
            with _scoring_modes(self.network, training):
                outputs = self.network(images, training=normalise_with_batch)
        outputs = tf.cast(outputs, tf.float32)
        logits = tf.math.log(tf.clip_by_value(outputs, PROBABILITY_FLOOR, 1.0)) if self.space.outputs_probabilities else outputs
        penalties = [tf.cast(w.regularizer(w), tf.float32) for w in self._always_regularised]
        return logits, tf.add_n([scope.penalty, *penalties])

    def layer_index(self):
        """`{path: layer}` of every layer of the network, the candidates of choices included.

        A path is the names of the nested models around the layer, then its
        own name, as in a child of the network.
        """
        return self._layer_index


class ChoiceSupernet(Supernet):
    """Shared weights of every child of a model built with `LayerChoice` / `InputChoice`.

    `train_step(x, y, arch)` trains the child `arch` (one int per decision
    of `space.slots`): each choice computes only its chosen candidate
    (`tf.switch_case`), so a step costs what the child costs, and one trace
    serves every architecture. `build_child(arch)` calls the build function
    with the architecture's values and copies the shared weights into the
    plain model it returns, layer by layer name.

    Args:
        space: a `ChoiceSpace`, or the build function / HyperModel to make one of.
        **kwargs: options of `keras_rlnas.supernet.base.Supernet`.

    Example:

    >>> import keras, numpy as np
    >>> from keras_rlnas.layers import LayerChoice
    >>> def build(hp):
    ...     images = keras.Input((8, 8, 1))
    ...     x = LayerChoice([keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
    ...                      keras.layers.Conv2D(4, 5, padding="same", activation="relu")], name="conv", hp=hp)(images)
    ...     x = keras.layers.GlobalAveragePooling2D()(x)
    ...     return keras.Model(images, keras.layers.Dense(3, activation="softmax")(x))
    >>> net = ChoiceSupernet(build)
    >>> images, labels = np.random.rand(4, 8, 8, 1), np.array([0, 1, 2, 0])
    >>> for seed in range(3):
    ...     _ = net.train_step(images, labels, net.space.random_encoding(seed))
    >>> net.trace_counts["train"]
    1
    >>> child = net.build_child([1])
    >>> bool(np.allclose(child.predict(images, verbose=0), net.predict(images, [1]), atol=1e-5))
    True
    """

    model_class = ChoiceSupernetModel

    def __init__(self, space, **kwargs):
        super().__init__(space if isinstance(space, ChoiceSpace) else ChoiceSpace(space), **kwargs)

    def copy_weights_to(self, child, values=None):
        """Copies the shared weights into `child`, a model built by `space.build_child`.

        Layers match by name within the nested models around them.

        Raises:
            ValueError: naming a layer of `child` the supernet has no weights for.
        """
        if values is not None:
            self.space.as_encoding(values)
        index = self.model.layer_index()
        for layer in child.layers:
            self._copy_layer(layer, index, ())
        return child

    def _copy_layer(self, layer, index, path):
        if not layer.weights:
            return
        source = index.get(path + (layer.name,))
        shapes = [tuple(w.shape) for w in layer.weights]
        if source is not None and [tuple(w.shape) for w in source.weights] == shapes:
            layer.set_weights(source.get_weights())
        elif isinstance(layer, keras.Model):
            for inner in layer.layers:
                self._copy_layer(inner, index, path + (layer.name,))
        else:
            raise ValueError(
                f"The supernet of {self.space.name!r} has no weights for the child's layer "
                f"{'/'.join(path + (layer.name,))!r} "
                f"(weights {shapes}): the build function must create the same layers, in the same order, "
                "whatever the choices."
            )


__all__ = ["ChoiceSupernet", "ChoiceSupernetModel"]
