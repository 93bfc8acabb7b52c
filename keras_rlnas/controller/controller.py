"""An autoregressive LSTM controller trained with REINFORCE."""

import dataclasses
import inspect
import json
import math
import re

import keras
import numpy as np
import tensorflow as tf
from tensorflow.experimental import numpy as tnp

from keras_rlnas.controller import steps
from keras_rlnas.controller.decisions import ANCHOR, CATEGORICAL, PICK, SKIP, Decision
from keras_rlnas.controller.options import PRESETS
from keras_rlnas.controller.options import validate as validate_options
from keras_rlnas.controller.rollout import Rollout, Sample

# Saved arrays whose name starts with it are optimizer variables, by Keras path.
OPTIMIZER_PREFIX = "optimizer/"


class Controller:
    """An LSTM policy over a sequence of architecture decisions (REINFORCE).

    The controller reads its own previous choice at every step (the sampled
    token's embedding, or the hidden states of the earlier positions it chose)
    and emits the next decision. `sample()` draws an architecture; `update()`
    takes a batch of sampled architectures with their rewards and makes one
    policy-gradient step: `-(R - b) * log p(actions)`, with `b` an exponential
    moving average of the rewards, minus an entropy bonus, plus an optional
    penalty pulling the skip-connection rate to `skip_target` (ENAS).

    The defaults are those of Zoph & Le (2017); `Controller.from_preset` gives
    the ENAS settings.

    Args:
        decisions: a list of `Decision`s; `extend()` adds more later.
        num_layers: LSTM layers.
        units: hidden units per LSTM layer (also the embedding size).
        init_range: weights start uniform in `[-init_range, init_range]`.
        temperature: logits are divided by it (`None`: 1).
        tanh_constant: logits become `c * tanh(logits)` (`None`: unchanged).
            A skip bit's logit is twice its shaped score, the reference
            code's softmax over `[-s, s]`, so a bit can reach `sigmoid(2c)`.
        entropy_weight: weight of the entropy bonus in the loss.
        skip_target: skip-connection rate the skip penalty pulls toward.
        skip_weight: weight of `KL(p_skip || skip_target)` in the loss (0: off),
            averaged over the skip bits.
        baseline_decay: decay of the reward moving average.
        learning_rate: learning rate of `optimizer`, a `keras.optimizers.Adam`
            whose variables `get_state` saves with the weights.
        adam_beta1, adam_beta2, adam_epsilon: its `beta_1`, `beta_2`, `epsilon`.
        clip_norm: its `global_clipnorm` (gradient-norm clip), or `None`.
        normalize_advantages: divide advantages by their running standard
            deviation, which makes the step size independent of the reward scale.
        jit_compile: compile the update with XLA: updates run about a third
            faster, but the first one compiles for tens of seconds on a CPU.
        seed: seed of the weights and of sampling.

    Example:

    >>> from keras_rlnas.controller import Controller, Decision
    >>> controller = Controller([Decision("op", "categorical", size=3)], seed=0)
    >>> sample = controller.sample()
    >>> sample.actions[0] in (0, 1, 2)
    True
    >>> stats = controller.update([sample], [1.0])
    """

    def __init__(
        self,
        decisions=(),
        *,
        num_layers=2,
        units=35,
        init_range=0.08,
        temperature=None,
        tanh_constant=None,
        entropy_weight=0.0,
        skip_target=0.4,
        skip_weight=0.0,
        baseline_decay=0.95,
        learning_rate=6e-4,
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-7,
        clip_norm=None,
        normalize_advantages=False,
        jit_compile=False,
        seed=None,
    ):
        self.config = self.check_options(
            num_layers=num_layers, units=units, init_range=init_range, temperature=temperature,
            tanh_constant=tanh_constant, entropy_weight=entropy_weight, skip_target=skip_target,
            skip_weight=skip_weight, baseline_decay=baseline_decay, learning_rate=learning_rate,
            adam_beta1=adam_beta1, adam_beta2=adam_beta2, adam_epsilon=adam_epsilon,
            clip_norm=clip_norm, normalize_advantages=normalize_advantages,
            jit_compile=jit_compile, seed=seed,
        )
        self.rng = np.random.default_rng(seed)
        self.decisions = []
        self.baseline = None
        self.reward_variance = None
        self.num_updates = 0
        self._variables = {}
        self._weights = {}
        self.optimizer = None
        self._train_fn = None
        units = self.config["units"]
        for layer in range(num_layers):
            self._add_variable(f"lstm/{layer}/kernel", (2 * units, 4 * units))
            self._add_variable(f"lstm/{layer}/bias", (4 * units,))
        self._add_variable("start", (1, units))
        self._add_variable("attention/w_prev", (units, units))
        self._add_variable("attention/w_curr", (units, units))
        self._add_variable("attention/v", (units,))
        self._build_optimizer()
        self.extend(decisions)

    @staticmethod
    def check_options(**options):
        """Validates controller options; returns them with the defaults filled in.

        Raises:
            ValueError: naming the option and the bad value.
            TypeError: for an unknown option.

        Example:

        >>> Controller.check_options(units=64)["units"]
        64
        """
        signature = inspect.signature(Controller.__init__)
        known = [p for p in signature.parameters if p not in ("self", "decisions")]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(f"Unknown controller option(s) {unknown}; expected some of {known}.")
        return validate_options({p: options.get(p, signature.parameters[p].default) for p in known})

    @classmethod
    def from_preset(cls, preset, decisions=(), **overrides):
        """A controller with a paper's settings: `"nas"`, `"enas_macro"` or `"enas_micro"`.

        Example:

        >>> Controller.from_preset("enas_macro").config["tanh_constant"]
        1.5
        """
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; expected one of {sorted(PRESETS)}.")
        return cls(decisions, **{**PRESETS[preset], **overrides})

    # ------------------------------------------------------------------ weights
    def _add_variable(self, name, shape):
        r = self.config["init_range"]
        value = self.rng.uniform(-r, r, size=shape).astype(np.float32)
        # Keras names allow fewer characters than decision keys; the index keeps them unique.
        keras_name = f"{re.sub(r'[^0-9A-Za-z_.]', '_', name)}_{len(self._variables)}"
        self._variables[name] = keras.Variable(value, name=keras_name)
        self._weights[name] = value

    def _build_optimizer(self):
        """A Keras Adam over every weight, keeping the moments of the weights it already had."""
        cfg = self.config
        previous = {v.path: v.numpy() for v in self.optimizer.variables} if self.optimizer else {}
        self.optimizer = keras.optimizers.Adam(
            learning_rate=cfg["learning_rate"],
            beta_1=cfg["adam_beta1"],
            beta_2=cfg["adam_beta2"],
            epsilon=cfg["adam_epsilon"],
            global_clipnorm=cfg["clip_norm"],
            # A fixed name: the variables' paths name them in saved states.
            name="controller_adam",
        )
        self.optimizer.build(list(self._variables.values()))
        for variable in self.optimizer.variables:
            if variable.path in previous:
                variable.assign(previous[variable.path])
        self._train_fn = None

    def extend(self, decisions):
        """Appends decisions (a space that grew); heads already learned are kept.

        Example:

        >>> controller = Controller(seed=0)
        >>> controller.extend([Decision("units", "categorical", size=4)])
        >>> len(controller.decisions)
        1
        """
        decisions = list(decisions)
        names = {d.name for d in self.decisions}
        known_variables = len(self._variables)
        for decision in decisions:
            if not isinstance(decision, Decision):
                raise TypeError(f"Expected a Decision, got {decision!r}.")
            if decision.name in names:
                raise ValueError(f"Duplicate decision name {decision.name!r}.")
            names.add(decision.name)
            if decision.kind == CATEGORICAL and f"head/{decision.head}/kernel" not in self._variables:
                units = self.config["units"]
                self._add_variable(f"head/{decision.head}/kernel", (units, decision.size))
                self._add_variable(f"head/{decision.head}/bias", (decision.size,))
                self._add_variable(f"embedding/{decision.head}", (decision.size, units))
        if len(self._variables) > known_variables:
            self._build_optimizer()
        if decisions:
            self.decisions.extend(decisions)
            self._train_fn = None

    def weights(self):
        """The current weights as a dict of NumPy arrays (a read-only view)."""
        return self._weights

    # ----------------------------------------------------------------- sampling
    def rollout(self, greedy=False):
        """Starts sampling one architecture decision by decision.

        Use it when which decisions are made depends on earlier choices
        (conditional hyperparameters); otherwise `sample()` does it all.

        Example:

        >>> controller = Controller([Decision("op", "categorical", size=3)], seed=0)
        >>> rollout = controller.rollout()
        >>> action = rollout.step(0)
        >>> rollout.finish().actions == (action,)
        True
        """
        return Rollout(self, greedy=greedy)

    def sample(self, greedy=False):
        """Samples every decision; returns a `Sample` (actions, log-probability, entropy)."""
        rollout = self.rollout(greedy=greedy)
        for index in range(len(self.decisions)):
            rollout.step(index)
        return rollout.finish()

    def score(self, actions):
        """Log-probability and entropy of given actions, as a `Sample` (NumPy path)."""
        rollout = self.rollout()
        for index, action in enumerate(actions):
            if action is not None:
                rollout.step(index, action=action)
        return rollout.finish()

    # ----------------------------------------------------------------- learning
    def _encode(self, samples):
        width = max([d.width for d in self.decisions] + [1])
        actions = np.zeros((len(samples), len(self.decisions), width), np.int32)
        active = np.zeros((len(samples), len(self.decisions)), np.float32)
        for row, sample in enumerate(samples):
            if len(sample.actions) > len(self.decisions):
                raise ValueError(
                    f"A sample has {len(sample.actions)} actions but the controller "
                    f"knows {len(self.decisions)} decisions."
                )
            for step, action in enumerate(sample.actions):
                if action is None:
                    continue
                active[row, step] = 1.0
                values = np.atleast_1d(np.asarray(action, np.int32))
                actions[row, step, : len(values)] = values
        return actions, active

    def log_probs(self, samples):
        """Log-probabilities and entropies of samples, computed by the TensorFlow graph."""
        actions, active = self._encode(samples)
        log_prob, entropy, _ = self._score_graph(tf.constant(actions), tf.constant(active))
        return log_prob.numpy(), entropy.numpy()

    def update(self, samples, rewards):
        """One REINFORCE step on a batch of sampled architectures.

        Args:
            samples: `Sample`s (or their `actions`) from `sample()` / `rollout()`.
            rewards: one finite float per sample; higher is better.

        Returns:
            A dict of statistics: loss, baseline, mean reward, mean advantage,
            entropy, log-probability and skip rate of the batch.
        """
        if len(samples) != len(rewards) or not samples:
            raise ValueError(f"update() needs as many rewards as samples, got {len(samples)} samples and {len(rewards)} rewards.")
        rewards = np.asarray(rewards, np.float64)
        if not np.all(np.isfinite(rewards)):
            raise ValueError(f"Rewards must be finite, got {rewards.tolist()}.")
        samples = [s if isinstance(s, Sample) else Sample(tuple(s)) for s in samples]
        decay = self.config["baseline_decay"]
        if self.baseline is None:
            self.baseline = float(rewards.mean())
            self.reward_variance = float(rewards.var())
        # ENAS moves the baseline toward each reward before taking the advantage.
        for reward in rewards.tolist():
            self.baseline -= (1 - decay) * (self.baseline - reward)
            self.reward_variance -= (1 - decay) * (self.reward_variance - (reward - self.baseline) ** 2)
        advantages = rewards - self.baseline
        if self.config["normalize_advantages"]:
            advantages = advantages / (math.sqrt(self.reward_variance) + 1e-8)
        actions, active = self._encode(samples)
        if self._train_fn is None:
            self._train_fn = tf.function(
                self._train_step,
                autograph=False,
                jit_compile=self.config["jit_compile"],
                input_signature=[
                    tf.TensorSpec([None, len(self.decisions), actions.shape[2]], tf.int32),
                    tf.TensorSpec([None, len(self.decisions)], tf.float32),
                    tf.TensorSpec([None], tf.float32),
                ],
            )
        stats = self._train_fn(actions, active, advantages.astype(np.float32))
        self._weights = {name: v.numpy() for name, v in self._variables.items()}
        self.num_updates += 1
        stats = {k: float(v) for k, v in stats.items()}
        stats.update(baseline=self.baseline, reward=float(rewards.mean()), advantage=float(advantages.mean()))
        return stats

    def _train_step(self, actions, active, advantages):
        variables = list(self._variables.values())
        with tf.GradientTape() as tape:
            log_prob, entropy, skip_kl = self._score_graph(actions, active)
            policy_loss = -tf.reduce_mean(advantages * log_prob)
            loss = policy_loss - self.config["entropy_weight"] * tf.reduce_mean(entropy)
            if self.config["skip_weight"]:
                loss += self.config["skip_weight"] * tf.reduce_mean(skip_kl)
        gradients = tape.gradient(loss, variables)
        # Weights no decision uses (attention without skip or pick decisions) get no gradient.
        pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
        self.optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        return {"loss": loss, "entropy": tf.reduce_mean(entropy), "log_prob": tf.reduce_mean(log_prob)}

    def _score_graph(self, actions, active):
        """Batched teacher-forced pass: log-probability, entropy and skip KL per sample."""
        weights = {name: tf.convert_to_tensor(v) for name, v in self._variables.items()}
        batch = tf.shape(actions)[0]
        start = tf.tile(weights["start"], [batch, 1])
        walk = steps.Walk(tnp, weights, self.config, start, with_skip_kl=bool(self.config["skip_weight"]))
        log_prob = entropy = skip_kl = skip_bits = tf.zeros([batch])
        for index, decision in enumerate(self.decisions):
            on = active[:, index]
            outcome = walk.step(decision, steps.Given(actions[:, index]), on[:, None])
            log_prob += on * outcome.log_prob
            entropy += on * outcome.entropy
            skip_kl += on * outcome.skip_kl
            skip_bits += on * outcome.skip_bits
        return log_prob, entropy, skip_kl / tf.maximum(skip_bits, 1.0)

    # -------------------------------------------------------------------- state
    def get_state(self):
        """Complete state as `(arrays, meta)`: NumPy arrays and plain JSON.

        Covers weights, optimizer variables, the baseline, the decisions and
        the RNG, so `set_state` on a fresh controller continues exactly where
        this one is.
        """
        arrays = dict(self._weights)
        arrays.update({f"{OPTIMIZER_PREFIX}{v.path}": v.numpy() for v in self.optimizer.variables})
        meta = {
            "config": self.config,
            "decisions": [dataclasses.asdict(d) for d in self.decisions],
            "baseline": self.baseline,
            "reward_variance": self.reward_variance,
            "num_updates": self.num_updates,
            "rng": self.rng.bit_generator.state,
        }
        return arrays, meta

    def set_state(self, arrays, meta):
        """Restores what `get_state` returned (the decisions are restored too)."""
        known = {d.name for d in self.decisions}
        self.extend([Decision(**d) for d in meta["decisions"] if d["name"] not in known])
        variables = [(name, v) for name, v in self._variables.items()]
        variables += [(f"{OPTIMIZER_PREFIX}{v.path}", v) for v in self.optimizer.variables]
        for name, variable in variables:
            if name not in arrays:
                raise ValueError(f"Controller state lacks the array {name!r}: it comes from another controller.")
            variable.assign(arrays[name])
        self._weights = {name: v.numpy() for name, v in self._variables.items()}
        self.baseline = meta["baseline"]
        self.reward_variance = meta["reward_variance"]
        self.num_updates = meta["num_updates"]
        self.rng.bit_generator.state = meta["rng"]

    def save(self, path):
        """Writes the complete state to one `.npz` file."""
        arrays, meta = self.get_state()
        with open(path, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)

    def load(self, path):
        """Reads a state written by `save`."""
        self.set_state(*read_state(path))


def read_state(path):
    """`(arrays, meta)` from a file written by `Controller.save`."""
    with np.load(path) as data:
        meta = json.loads(str(data["__meta__"]))
        arrays = {k: data[k] for k in data.files if k != "__meta__"}
    return arrays, meta


__all__ = ["Controller", "Decision", "Sample", "PRESETS", "ANCHOR", "CATEGORICAL", "PICK", "SKIP"]
