"""The convolutional search space of Zoph & Le (2017), "NAS with Reinforcement Learning".

A child network is a stack of `conv -> batch norm -> ReLU` layers. For each
layer the controller picks a filter height and width, a number of filters,
optionally the strides, and which earlier layers feed it (its "anchor point").
A sampled description compiles into a Keras model by the paper's rules:

- several inputs of a layer are concatenated along the depth axis;
- inputs of different spatial sizes: the smaller ones are zero-padded to the
  largest height and the largest width;
- a layer with no input takes the image;
- every layer output no other layer consumed is concatenated (after the same
  padding) and fed to the classifier: global average pooling, dense softmax.

The hyperparameters follow `keras_rlnas.spaces.structured`:
`layers[i].filter_height`, `layers[i].filter_width`, `layers[i].num_filters`,
`layers[i].stride_height`, `layers[i].stride_width` (when strides are searched)
and last the Booleans `layers[i].skip[j]`, so the controller's anchor for
layer `i` is its state after the layer's last token.
"""

import functools

import keras
import keras_tuner

from keras_rlnas import _checks as checks
from keras_rlnas.spaces import structured

GROUP = "layers"


class DepthCurriculum:
    """Grows the network during the search (Zoph & Le: 6 layers, +2 every 1,600 samples).

    Args:
        start_layers: depth of the first sampled architectures.
        add_layers: layers added at each step.
        every: sampled architectures between two steps.

    Example:

    >>> curriculum = DepthCurriculum(start_layers=6, add_layers=2, every=1600)
    >>> curriculum(0), curriculum(1599), curriculum(1600), curriculum(5000)
    (6, 6, 8, 12)
    """

    def __init__(self, start_layers=6, add_layers=2, every=1600):
        for label, value in (("start_layers", start_layers), ("add_layers", add_layers), ("every", every)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DepthCurriculum `{label}` must be an int >= 1, got {value!r}.")
        self.start_layers = start_layers
        self.add_layers = add_layers
        self.every = every

    def __call__(self, num_sampled):
        """Depth of the architectures sampled after `num_sampled` earlier ones."""
        return self.start_layers + self.add_layers * (int(num_sampled) // self.every)

    def get_config(self):
        return {"start_layers": self.start_layers, "add_layers": self.add_layers, "every": self.every}


def _choices(label, values):
    values = tuple(values)
    if not values:
        raise ValueError(f"`{label}` is empty: the space needs at least one choice.")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int) or v < 1]
    if bad:
        raise ValueError(f"`{label}` must hold positive ints, got {bad[0]!r} in {values}.")
    if len(set(values)) != len(values):
        raise ValueError(f"`{label}` repeats a value: {values}.")
    return values


def _valid_output(size, kernel, stride):
    return (size - kernel) // stride + 1


class VanillaNAS(keras_tuner.HyperModel):
    """Zoph & Le's CNN search space as a Keras Tuner HyperModel.

    Args:
        input_shape: shape of one image, `(height, width, channels)`.
        num_classes: number of classes of the softmax classifier.
        num_layers: number of convolutional layers (the maximum when a
            `curriculum` grows the network).
        filter_heights, filter_widths: choices of kernel height and width.
        num_filters: choices of the number of filters.
        strides: `None` (stride 1, the paper's main space) or the choices of
            stride height and width, e.g. `(1, 2, 3)` ("predicting strides").
        skip_connections: search the anchor-point skip connections; `False`
            chains every layer to the previous one.
        skip_default: default of every skip Boolean (the first trial of a
            non-RL oracle, and newly unlocked layers of a curriculum).
        padding: `"same"` (never shrinks below 1x1) or `"valid"`; with
            `"valid"` a space whose worst case shrinks below 1x1 is refused.
        curriculum: `None`, a `DepthCurriculum`, or a callable
            `f(num_sampled) -> depth`. See "Depth curriculum" below.
        learning_rate, momentum, nesterov: the children's SGD (paper: 0.1,
            0.9, Nesterov).
        weight_decay: 1e-4 in the paper (DenseNet's settings).
        decoupled_weight_decay: `False` (default) applies weight decay as an
            L2 loss term of `weight_decay / 2` on every trainable weight, so its
            gradient `weight_decay * w` goes through momentum as in the
            reference (Torch) SGD; `True` uses Keras SGD's decoupled
            `weight_decay` instead.
        bn_momentum: momentum of the batch-norm moving statistics. 0.9 (the
            ENAS code's decay; Torch's default) rather than Keras' 0.99, whose
            statistics lag far behind the weights after a few hundred steps and
            make a short-trained child's validation accuracy meaningless.
        epochs: default epochs of `fit` (paper: 50); `search(..., epochs=n)` wins.
        batch_size: default batch size of `fit` for array inputs.
        name, tunable: as for `keras_tuner.HyperModel`.

    Depth curriculum: the hypermodel counts the children it has trained
    (`num_sampled`, one per `fit`; set it to resume a count). A build declares
    layers up to `curriculum(num_sampled)` (at most `num_layers`), so deeper
    layers do not exist as hyperparameters before they are unlocked; the
    oracle sees them when the first deeper trial ends, and that trial uses
    their defaults. Rebuilding a finished trial's hyperparameters (e.g.
    `tuner.get_best_models()`) gives that trial's depth: a build never goes
    shallower than the layers `hp` already holds, and values this object has
    built before are rebuilt as they were. With several tuner processes each
    counts its own children.

    The tuner's objective for the paper's reward is `"val_accuracy"` with
    `keras_rlnas.RLSearch(reward="nas")` (the accuracy cubed; see `keras_rlnas.rewards`).

    Example:

    ```python
    space = keras_rlnas.VanillaNAS(input_shape=(28, 28, 1), num_classes=10, num_layers=4)
    tuner = keras_rlnas.RLSearch(space, objective="val_accuracy", reward="nas", max_trials=20)
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=5)
    ```
    """

    def __init__(
        self,
        input_shape,
        num_classes,
        num_layers=6,
        filter_heights=(1, 3, 5, 7),
        filter_widths=(1, 3, 5, 7),
        num_filters=(24, 36, 48, 64),
        strides=None,
        skip_connections=True,
        skip_default=False,
        padding="same",
        curriculum=None,
        learning_rate=0.1,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
        decoupled_weight_decay=False,
        bn_momentum=0.9,
        epochs=50,
        batch_size=128,
        name="vanilla_nas",
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        input_shape = checks.image_shape("input_shape", input_shape)
        num_classes = checks.positive_int("num_classes", num_classes, minimum=2)
        num_layers = checks.positive_int("num_layers", num_layers)
        momentum, bn_momentum = checks.fraction("momentum", momentum), checks.fraction("bn_momentum", bn_momentum)
        epochs, batch_size = checks.positive_int("epochs", epochs), checks.positive_int("batch_size", batch_size)
        if padding not in ("same", "valid"):
            raise ValueError(f"`padding` must be 'same' or 'valid', got {padding!r}.")
        if not learning_rate or (isinstance(learning_rate, (int, float)) and learning_rate <= 0):
            raise ValueError(f"`learning_rate` must be positive, got {learning_rate!r}.")
        if weight_decay < 0:
            raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay!r}.")
        if curriculum is not None and not callable(curriculum):
            raise ValueError(f"`curriculum` must be None, a DepthCurriculum or a callable, got {curriculum!r}.")
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.num_layers = num_layers
        self.filter_heights = _choices("filter_heights", filter_heights)
        self.filter_widths = _choices("filter_widths", filter_widths)
        self.num_filters = _choices("num_filters", num_filters)
        self.strides = None if strides is None else _choices("strides", strides)
        self.skip_connections = bool(skip_connections)
        self.skip_default = bool(skip_default)
        self.padding = padding
        self.curriculum = curriculum
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.decoupled_weight_decay = decoupled_weight_decay
        self.bn_momentum = bn_momentum
        self.epochs = epochs
        self.batch_size = batch_size
        self.num_sampled = 0
        self._built_values = set()
        if curriculum is not None:
            start = curriculum(0)
            if not isinstance(start, int) or not 1 <= start <= num_layers:
                raise ValueError(f"The curriculum starts at {start!r} layers; it must be 1..num_layers={num_layers}.")
        if padding == "valid":
            self._check_valid_padding()

    def _check_valid_padding(self):
        # Without padding a chain of the largest kernels and strides is the
        # smallest any layer can get: inputs are padded up, never down.
        stride = max(self.strides or (1,))
        height, width = self.input_shape[:2]
        for layer in range(self.num_layers):
            height = _valid_output(height, max(self.filter_heights), stride)
            width = _valid_output(width, max(self.filter_widths), stride)
            if height < 1 or width < 1:
                raise ValueError(
                    f"With padding='valid', kernels up to {max(self.filter_heights)}x"
                    f"{max(self.filter_widths)} and strides up to {stride}, layer {layer} of a "
                    f"{self.input_shape[0]}x{self.input_shape[1]} image can shrink below 1x1. Use fewer layers, smaller kernels or strides, or padding='same'."
                )

    # ----------------------------------------------------------- hyperparameters
    def depth(self, hp):
        """Number of layers a build of `hp` has (see "Depth curriculum")."""
        present = 0
        while structured.position_name(GROUP, present, "filter_height") in hp.values:
            present += 1
        if self._values_key(hp.values) in self._built_values:
            return min(present, self.num_layers)
        target = self.num_layers if self.curriculum is None else self.curriculum(self.num_sampled)
        return min(max(present, target), self.num_layers)

    def describe(self, hp):
        """Declares the hyperparameters of `hp` and returns the architecture they describe.

        Returns:
            A list with one dict per layer: `filter_height`, `filter_width`,
            `num_filters`, `strides` (a pair) and `inputs` (the earlier layers
            feeding it; empty: the image). Plain JSON; `build_model` compiles it.
        """
        description = []
        for i in range(self.depth(hp)):
            name = functools.partial(structured.position_name, GROUP, i)
            layer = {
                "filter_height": hp.Choice(name("filter_height"), self.filter_heights),
                "filter_width": hp.Choice(name("filter_width"), self.filter_widths),
                "num_filters": hp.Choice(name("num_filters"), self.num_filters),
                "strides": [1, 1],
            }
            if self.strides is not None:
                layer["strides"] = [hp.Choice(name("stride_height"), self.strides), hp.Choice(name("stride_width"), self.strides)]
            if self.skip_connections:
                layer["inputs"] = structured.skip_inputs(hp, GROUP, i, default=self.skip_default)
            else:
                layer["inputs"] = [i - 1] if i else []
            description.append(layer)
        self._built_values.add(self._values_key(hp.values))
        return description

    @staticmethod
    def _values_key(values):
        return tuple(sorted((k, repr(v)) for k, v in values.items() if k.startswith(GROUP + "[")))

    # ------------------------------------------------------------------- models
    def build(self, hp):
        """Builds and compiles the child network that `hp` describes."""
        return self.build_model(self.describe(hp))

    def build_model(self, description, compile=True):
        """Compiles an architecture description (see `describe`) into a Keras model.

        Args:
            description: a list of layer dicts as returned by `describe`.
            compile: compile with the children's SGD, sparse categorical
                cross-entropy and accuracy.

        Returns:
            A functional `keras.Model` named `self.name`.
        """
        _check_description(description)
        regularizer = None
        if self.weight_decay and not self.decoupled_weight_decay:
            regularizer = keras.regularizers.L2(self.weight_decay / 2)
        image = keras.Input(self.input_shape, name="image")
        outputs, consumed = [], set()
        for i, layer in enumerate(description):
            consumed.update(layer["inputs"])
            sources = [(f"layers_{j}", outputs[j]) for j in layer["inputs"]] or [("image", image)]
            x = _merge(sources, f"layers_{i}")
            x = keras.layers.Conv2D(
                layer["num_filters"],
                (layer["filter_height"], layer["filter_width"]),
                strides=tuple(layer["strides"]),
                padding=self.padding,
                use_bias=False,
                kernel_initializer="he_normal",
                kernel_regularizer=regularizer,
                name=f"layers_{i}_conv",
            )(x)
            x = keras.layers.BatchNormalization(
                momentum=self.bn_momentum,
                gamma_regularizer=regularizer, beta_regularizer=regularizer, name=f"layers_{i}_bn"
            )(x)
            outputs.append(keras.layers.ReLU(name=f"layers_{i}_relu")(x))
        loose = [(f"layers_{i}", out) for i, out in enumerate(outputs) if i not in consumed]
        x = _merge(loose, "classifier")
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
        probabilities = keras.layers.Dense(
            self.num_classes,
            activation="softmax",
            kernel_regularizer=regularizer,
            bias_regularizer=regularizer,
            name="classifier",
        )(x)
        model = keras.Model(image, probabilities, name=self.name)
        if compile:
            model.compile(
                optimizer=keras.optimizers.SGD(
                    learning_rate=self.learning_rate,
                    momentum=self.momentum,
                    nesterov=self.nesterov,
                    weight_decay=self.weight_decay if self.decoupled_weight_decay else None,
                ),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
        return model

    def fit(self, hp, model, *args, **kwargs):
        """Trains a child (default `epochs`, `batch_size`) and counts it for the curriculum."""
        kwargs.setdefault("epochs", self.epochs)
        x = args[0] if args else kwargs.get("x")
        if self.batch_size is not None and hasattr(x, "shape") and hasattr(x, "dtype"):
            kwargs.setdefault("batch_size", self.batch_size)
        self.num_sampled += 1
        return model.fit(*args, **kwargs)

    def get_config(self):
        """The constructor arguments (JSON-friendly except a custom curriculum callable)."""
        curriculum = self.curriculum
        if isinstance(curriculum, DepthCurriculum):
            curriculum = {"class_name": "DepthCurriculum", "config": curriculum.get_config()}
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "num_layers": self.num_layers,
            "filter_heights": list(self.filter_heights),
            "filter_widths": list(self.filter_widths),
            "num_filters": list(self.num_filters),
            "strides": None if self.strides is None else list(self.strides),
            "skip_connections": self.skip_connections,
            "skip_default": self.skip_default,
            "padding": self.padding,
            "curriculum": curriculum,
            "learning_rate": self.learning_rate,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "decoupled_weight_decay": self.decoupled_weight_decay,
            "bn_momentum": self.bn_momentum,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "name": self.name,
            "tunable": self.tunable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        curriculum = config.get("curriculum")
        if isinstance(curriculum, dict):
            config["curriculum"] = DepthCurriculum(**curriculum["config"])
        return cls(**config)


def _check_description(description):
    if not description:
        raise ValueError("An architecture needs at least one layer, got an empty description.")
    for i, layer in enumerate(description):
        bad = [j for j in layer["inputs"] if not 0 <= j < i]
        if bad:
            raise ValueError(f"Layer {i} takes input from layer {bad[0]}: inputs must be earlier layers 0..{i - 1}.")


def _merge(sources, name):
    """Pads `(label, tensor)` sources to the largest height and width, concatenates them."""
    if len(sources) == 1:
        return sources[0][1]
    height = max(t.shape[1] for _, t in sources)
    width = max(t.shape[2] for _, t in sources)
    padded = []
    for label, tensor in sources:
        extra_h, extra_w = height - tensor.shape[1], width - tensor.shape[2]
        if extra_h or extra_w:
            # Centred, the extra row / column at the bottom / right.
            tensor = keras.layers.ZeroPadding2D(
                ((extra_h // 2, extra_h - extra_h // 2), (extra_w // 2, extra_w - extra_w // 2)),
                name=f"{name}_pad_{label}",
            )(tensor)
        padded.append(tensor)
    return keras.layers.Concatenate(axis=-1, name=f"{name}_concat")(padded)
