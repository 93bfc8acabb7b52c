"""`ENASTuner`: Efficient NAS via parameter sharing (Pham et al., 2018) through `tuner.search()`.

It searches the ENAS macro and micro spaces, and any model a user builds with
`LayerChoice` / `InputChoice` (`keras_rlnas.supernet.ChoiceSpace`).
"""

import collections
import contextlib
import time

import keras_tuner
import numpy as np

from keras_rlnas import _checks as checks
from keras_rlnas.controller import Controller
from keras_rlnas.controller.learner import ControllerView, PolicyLearner, trials_in_order
from keras_rlnas.controller.options import preset_or_options
from keras_rlnas.spaces import ENASMacro, ENASMicro
from keras_rlnas.supernet import ChoiceSpace, build_supernet
from keras_rlnas.supernet import check_options as check_supernet_options
from keras_rlnas.tuners import derivation, grappler, search_inputs
from keras_rlnas.tuners.child_retraining import ChildRetraining
from keras_rlnas.tuners.derivation import minibatches
from keras_rlnas.tuners.final_choice import CALIBRATION_BATCHES, FinalChoice
from keras_rlnas.tuners.recording_oracle import RecordingOracle, recorded_objective
from keras_rlnas.tuners.search_records import SearchRecords

# Over the reference code's preset: no temperature and rewards scaled by their
# running spread, so that ten epochs of 20 updates move the policy (entropy
# 21.1 -> 12.2 nats on the 6-layer macro space, benchmarks/enas_controller.py)
# where the paper's temperature 5 (measured with the preset holding it) and raw
# accuracy differences of about 0.01 leave it uniform; learning rate 3e-3 stops
# short of the collapse that 1e-2 gives.
DEFAULT_CONTROLLER_STEPS = 20
DEFAULT_CONTROLLER_BATCH = 10
DEFAULT_CONTROLLER_OPTIONS = dict(
    temperature=None, learning_rate=3e-3, normalize_advantages=True, baseline_decay=0.9
)

# What picks the omega phase's children (see `ENASTuner`'s `sampler`).
SAMPLERS = ("controller", "uniform", "fair")
# Seeds the validation minibatches' order apart from the other draws: `[seed, VALIDATION_ORDER]`.
VALIDATION_ORDER = 1


class ENASTuner(ChildRetraining, FinalChoice, SearchRecords, keras_tuner.engine.base_tuner.BaseTuner):
    """ENAS: one shared-weight supernet, a controller that learns which child to keep.

    `search(x, y, validation_data=..., epochs=E)` runs E ENAS epochs. Each has
    the omega phase (one pass over the training data, a uniformly drawn
    architecture trains the shared weights on every minibatch; in ENAS's own
    loop, `omega_sampler="controller"`, the controller draws it) and the theta
    phase (`controller_steps` REINFORCE updates, each on `controller_batch`
    architectures scored by their accuracy on one validation minibatch with
    the shared weights frozen). After each epoch `derive_samples`
    architectures are scored on a validation minibatch, the
    `derive_finalists` best again on 1,024 validation images with their own
    recalibrated batch-norm statistics, and the best is recorded as a Keras
    Tuner trial, so `get_best_hyperparameters()`,
    `results_summary()` and `get_best_models()` (the child holding the
    supernet's weights) work as usual. `retrain()` trains a child from scratch.

    Args:
        hypermodel: an `ENASMacro` or `ENASMicro` space, or a function
            `build(hp) -> keras.Model` / a `keras_tuner.HyperModel` whose model
            uses `keras_rlnas.layers.LayerChoice` / `InputChoice` (passed
            `hp=hp`); its supernet is built once, each choice is a controller
            decision, and each recorded trial's model is the plain model the
            function builds for the derived values.
        objective: name of the recorded score (validation accuracy with shared
            weights), or a `keras_tuner.Objective` of direction `"max"`; not
            a loss, nor a key the epoch logs give the shared weights'
            training (`"accuracy"`, `"learning_rate"`, ...).
        seed: seed of the controller, the data order and the derivation. The
            supernet's initial weights come from Keras's global seed: call
            `keras.utils.set_random_seed` too for the same start. On a CPU
            the same seeded search does not repeat bit for bit from one
            process to the next (TensorFlow's kernels round differently), and
            over hundreds of steps it can part into other children
            (`benchmarks/repeatability.py`).
        sampler: `"controller"` (ENAS), `"uniform"` (random search with weight
            sharing, the baseline ENAS must beat) or `"fair"` (the same random
            search on a supernet trained with FairNAS's strict fairness: each
            omega step sums the gradients of children that pick every op of
            every position once, `space.fair_encodings()`, at that many times
            the cost per image; ENAS spaces only).
        omega_sampler: what picks the children that train the shared weights:
            `None` (uniform draws; fair ones with `sampler="fair"`),
            `"uniform"`, `"fair"` or `"controller"` (the controller's own
            samples: the ENAS papers' loop). A uniform omega phase decouples
            the shared weights from the policy, as Single Path One-Shot (Guo
            et al., 2020) does: every child trains as often whatever the
            controller prefers, so the children it samples most are not also
            the best trained (ENAS's rich-get-richer loop, which led the macro
            controller to skip-heavy children that retrain worse; see the
            README).
        controller_steps: REINFORCE updates per epoch (20; the reference code
            makes 50 macro / 30 micro, which on a CPU cost more than the
            omega phase).
        controller_batch: architectures per update (10; 20 macro / 10 micro
            in the reference code).
        derive_samples: architectures scored when deriving after each epoch.
        derive_finalists: how many of them are scored again on more
            validation images (1: the reference code's single minibatch).
        fine_tune_steps: 0 (the reference code's derivation), or: when the
            search ends, the last derivation's finalists and the best child so
            far each train alone for this many SGD steps from the shared
            weights (100 is `FINE_TUNE_STEPS`) and are scored again on every
            validation image, and the best is recorded as the last trial,
            holding its fine-tuned weights (`keras_rlnas.supernet.fine_tuning`).
            Children inherit shared weights that suit some of them better than
            others; a short training of their own weakens that bias, but its
            gain in ranking is within the noise of the measurements so far
            (see the README).
        finalist_epochs: 0, or: when the search ends, the same candidates
            each train alone from scratch for this many epochs with
            `retrain()`'s recipe and are scored on every validation image, and
            the best is recorded as the last trial, holding its own weights
            (DARTS's choice by a short training from scratch;
            `keras_rlnas.tuners.final_choice`). Each epoch costs about half
            an omega phase per candidate, and building each candidate about
            as much again at one epoch (macro 6 x 16 on 12,000 images: 5-6
            candidates in 66-102 s, an omega phase 13-15 s); a `time_budget`
            reserves only the epochs. Not with `fine_tune_steps`.
        uniform_finalists: with `finalist_epochs`, this many architectures
            drawn uniformly from the space (distinct from each other and
            from the other candidates) join the candidates trained from
            scratch: the final choice then also weighs children the shared
            weights' biases keep out of the derivation (the derived macro
            children take no max-pools, which standalone children gain from;
            see the README). 0 by default.
        batch_size: default minibatch size of the omega phase. 32, not the
            reference code's 128: a candidate op trains only on the
            minibatches that sample it, and four times as many updates per
            image let the shared weights learn about as fast per second and
            much faster per image (see the README's ENAS figures).
        validation_batch_size: validation images per controller reward and
            per derivation candidate (the reference code's 128).
        controller_options: `keras_rlnas.Controller` options over
            `DEFAULT_CONTROLLER_OPTIONS` (which sit over the reference code's
            preset), or a preset's name, `"enas_macro"` / `"enas_micro"`, for
            the reference code's controller (its micro op-logit tanh
            reduction and fixed op bias aside). The defaults move the policy
            within ten epochs; the paper's temperature 5 and unscaled rewards
            need hundreds (see the README).
        supernet_options: options of the supernet (learning-rate schedule,
            `jit_compile`, `dtype_policy`, ...; macro `entangled=False` for
            the reference code's separate op weights).
        distribution_strategy: a `tf.distribute.Strategy` (e.g.
            `MirroredStrategy()` over one machine's GPUs) under which the
            supernet's variables live and its steps run, each minibatch split
            across the replicas; as Keras Tuner's argument of that name.
        grappler: `False` switches TensorFlow's graph optimiser off while
            `search()` runs, for the whole process (TensorFlow has no switch
            per function), and restores it when `search()` returns. On a CPU
            its passes over a large supernet's steps hold up the first
            minibatch (see `benchmarks/enas_startup.py`).
        verbose: print one line per epoch.
        **kwargs: `directory`, `project_name`, `overwrite`, ... of Keras Tuner.

    Example:

    ```python
    space = keras_rlnas.ENASMacro((28, 28, 1), num_classes=10, num_layers=6, filters=16)
    tuner = keras_rlnas.ENASTuner(space, seed=0, directory="results", project_name="enas")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=10, batch_size=128)
    best_hp = tuner.get_best_hyperparameters(1)[0]
    model = tuner.retrain(best_hp, x, y, epochs=20)
    warm = tuner.retrain(best_hp, x, y, epochs=3, from_shared_weights=True)  # starts from the supernet's weights
    ```

    Over a user's own model (`build` declares `LayerChoice` / `InputChoice`
    layers with `hp=hp`, and compiles the model as for `RandomSearch`):

    ```python
    tuner = keras_rlnas.ENASTuner(build, seed=0, directory="results", project_name="custom")
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=10)
    model = tuner.get_best_models(1)[0]  # a plain Keras model: no choice layer left
    ```
    """

    def __init__(
        self,
        hypermodel,
        objective="val_accuracy",
        seed=None,
        sampler="controller",
        omega_sampler=None,
        controller_steps=None,
        controller_batch=None,
        derive_samples=100,
        derive_finalists=5,
        fine_tune_steps=0,
        finalist_epochs=0,
        uniform_finalists=0,
        batch_size=32,
        validation_batch_size=128,
        controller_options=None,
        supernet_options=None,
        distribution_strategy=None,
        grappler=True,
        verbose=1,
        **kwargs,
    ):
        if sampler not in SAMPLERS:
            raise ValueError(f"`sampler` must be one of {SAMPLERS}, got {sampler!r}.")
        if omega_sampler is not None and omega_sampler not in SAMPLERS:
            raise ValueError(f"`omega_sampler` must be None or one of {SAMPLERS}, got {omega_sampler!r}.")
        if omega_sampler == "controller" and sampler != "controller":
            raise ValueError(
                f"`omega_sampler='controller'` trains the shared weights on the controller's samples, and "
                f"sampler={sampler!r} has no controller: use sampler='controller'."
            )
        if omega_sampler is None:
            omega_sampler = "fair" if sampler == "fair" else "uniform"
        if omega_sampler == "fair" and not isinstance(hypermodel, (ENASMacro, ENASMicro)):
            raise ValueError(
                f"A 'fair' `sampler` or `omega_sampler` needs an ENASMacro or ENASMicro space (their op choices "
                f"are known), got {hypermodel!r}."
            )
        macro = isinstance(hypermodel, ENASMacro)
        if controller_steps is None:
            controller_steps = DEFAULT_CONTROLLER_STEPS
        if controller_batch is None:
            controller_batch = DEFAULT_CONTROLLER_BATCH
        self.controller_steps = checks.positive_int("controller_steps", controller_steps)
        self.controller_batch = checks.positive_int("controller_batch", controller_batch)
        self.derive_samples = checks.positive_int("derive_samples", derive_samples)
        self.derive_finalists = checks.positive_int("derive_finalists", derive_finalists)
        self.fine_tune_steps = checks.positive_int("fine_tune_steps", fine_tune_steps, minimum=0)
        self.finalist_epochs = checks.positive_int("finalist_epochs", finalist_epochs, minimum=0)
        if self.fine_tune_steps and self.finalist_epochs:
            raise ValueError(
                f"The search ends with one choice among its finalists: fine_tune_steps={fine_tune_steps!r} "
                f"(from the shared weights) or finalist_epochs={finalist_epochs!r} (from scratch), not both."
            )
        self.uniform_finalists = checks.positive_int("uniform_finalists", uniform_finalists, minimum=0)
        if self.uniform_finalists and not self.finalist_epochs:
            raise ValueError(
                f"uniform_finalists={uniform_finalists!r} adds candidates to the finalists trained from scratch; "
                f"set finalist_epochs too (got finalist_epochs={finalist_epochs!r})."
            )
        self.batch_size = checks.positive_int("batch_size", batch_size)
        self.validation_batch_size = checks.positive_int("validation_batch_size", validation_batch_size)
        if not isinstance(grappler, bool):
            raise ValueError(f"`grappler` must be True or False, got {grappler!r}.")
        self.grappler = grappler
        self.sampler = sampler
        self.omega_sampler = omega_sampler
        self.seed = 0 if seed is None else checks.positive_int("seed", seed, minimum=0)
        self.verbose = verbose
        chosen, self.controller_options = preset_or_options(controller_options, DEFAULT_CONTROLLER_OPTIONS)
        # A user's choices pick inputs by attention, as the micro cells do.
        preset = chosen or ("enas_macro" if macro else "enas_micro")
        Controller.check_options(**{**self.controller_options, "seed": self.seed})
        self.supernet_options = dict(supernet_options or {})
        if distribution_strategy is not None:
            self.supernet_options["distribution_strategy"] = distribution_strategy
        self.space = hypermodel if isinstance(hypermodel, (ENASMacro, ENASMicro)) else ChoiceSpace(hypermodel)
        check_supernet_options(self.space, self.supernet_options)  # now, not after the data is prepared
        self.hyperparameters = keras_tuner.HyperParameters()
        self.space.declare_hyperparameters(self.hyperparameters)
        # One REINFORCE update per `controller_batch` rewarded architectures.
        self.learner = PolicyLearner(
            self.controller_batch, {**self.controller_options, "seed": self.seed}, preset=preset
        )
        self.learner.sync(self.hyperparameters)
        self.rng = np.random.default_rng(self.seed)
        self.supernet = None
        # The last training minibatches of the omega phase: BN recalibration of derived children.
        self._calibration_images = None
        self.history = []
        self.epochs_done = 0
        self._finalists = []
        # Where the validation minibatches are (`derivation.ResumableCycle.state`), saved with each epoch.
        self._validation_order = None
        self._validation_batches = None
        # `epochs_done` when the fine-tuned / trained finalists were last recorded, and their scores.
        self.fine_tuned = None
        self.trained_finalists = None
        oracle = RecordingOracle(recorded_objective(objective), seed=self.seed)
        # With overwrite=False and a saved search, this calls reload(), which restores it.
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.oracle.verbose = verbose  # Keras Tuner's per-trial table follows the tuner's verbosity.

    @property
    def controller(self):
        """The `keras_rlnas.Controller` (see `learner`)."""
        return self.learner.controller

    @property
    def decision_map(self):
        """How the space maps onto the controller's decisions."""
        return self.learner.decision_map

    def controller_view(self):
        """What reports read: trials, objective, one history step per REINFORCE update, policy and space."""
        trials = self.oracle.trials
        return ControllerView(
            trials=trials_in_order(trials),
            objective=self.oracle.objective.name,
            history=self.learner.history,
            controller=self.controller,
            decision_map=self.decision_map,
            hyperparameters=self.hyperparameters,
        )

    # ------------------------------------------------------------------ sampling
    def sample_architecture(self, greedy=False):
        """`(encoding, sample)` of one architecture from the sampler.

        The encoding is the int32 vector the supernet takes (`space.decode`
        gives its hyperparameter values); `sample` holds the controller's
        actions, or is `None` for the uniform sampler.
        """
        if self.sampler != "controller":
            return self.space.random_encoding(int(self.rng.integers(2**31))), None
        sample = self.learner.sample_actions(greedy=greedy)
        return self.space.encoding_from_actions(sample.actions), sample

    def _omega_child(self):
        """The encoding of the child that trains the shared weights on one minibatch."""
        if self.omega_sampler == "uniform":
            return self.space.random_encoding(int(self.rng.integers(2**31)))
        return self.sample_architecture()[0]

    # -------------------------------------------------------------------- search
    def _build_supernet(self):
        self.supernet = build_supernet(self.space, **self.supernet_options)

    def search(
        self, x=None, y=None, validation_data=None, epochs=1, batch_size=None, time_budget=None,
        validation_batch_size=None, **kwargs,
    ):
        """Runs ENAS epochs until `epochs` are done (resuming from the last finished one).

        Takes `keras_tuner.RandomSearch.search`'s arguments where they have an
        ENAS meaning and refuses the others with the reason (see
        `keras_rlnas.tuners.search_inputs`). The data is checked against the
        space before the first step.

        Args:
            x, y: training images and integer labels, or `x` a finite
                `tf.data.Dataset` of `(images, labels)` batches. Images go in
                as given: nothing rescales them (the built-in spaces' stems
                end in batch norm; `keras_rlnas.data` whitens its data sets).
            validation_data: `(x, y)` arrays (or a batched dataset) for the controller's reward.
            epochs: total ENAS epochs.
            batch_size: omega-phase minibatch size for arrays (the tuner's when `None`).
            time_budget: seconds; no epoch starts that would likely end after it.
            validation_batch_size: images per controller reward (the tuner's when `None`);
                a validation dataset is batched to it afresh.
            **kwargs: `validation_split` (the last fraction of the arrays, as in
                `fit`), `shuffle` (of the training arrays, every epoch),
                `verbose` (0 silent, 1 or 2 a line per epoch) and `callbacks`
                (Keras callbacks called once per ENAS epoch, bound to the
                supernet's model; `model.stop_training`, as `EarlyStopping`
                sets it, ends the search after the epoch).
        """
        with contextlib.nullcontext() if self.grappler else grappler.switched_off():
            self._search(x, y, validation_data, epochs, batch_size, time_budget, validation_batch_size, **kwargs)

    def _search(self, x, y, validation_data, epochs, batch_size, time_budget, validation_batch_size, **kwargs):
        began = time.time()  # the budget counts the data's checks and the supernet's build too
        if time_budget is not None:
            time_budget = checks.positive_float("time_budget", time_budget)
        inputs = search_inputs.prepare(
            self.space, x, y, validation_data, epochs=epochs, batch_size=batch_size or self.batch_size,
            **{"verbose": self.verbose, **kwargs},
        )
        if "verbose" in kwargs:
            self.oracle.verbose = inputs.verbose  # As Keras Tuner's search() sets it.
        if self.finalist_epochs and hasattr(inputs.train, "cardinality") and int(inputs.train.cardinality()) < 1:
            # Known now rather than when the finalists' training refuses it, after every epoch ran.
            raise ValueError(
                f"finalist_epochs={self.finalist_epochs!r} trains the finalists on the training dataset, which needs a "
                f"known length; its cardinality is {int(inputs.train.cardinality())} (unknown after `filter`): pass "
                "arrays or give it one with `dataset.apply(tf.data.experimental.assert_cardinality(batches))`."
            )
        train = inputs.training_data()
        if self.supernet is None:
            self._build_supernet()
        callbacks = inputs.callback_list(self.supernet.model, self.supernet.optimizer)
        self.supernet.model.stop_training = False
        if validation_batch_size is None:
            validation_batch_size = self.validation_batch_size
        validation_batch_size = checks.positive_int("validation_batch_size", validation_batch_size)
        validation = inputs.validation
        if hasattr(validation, "unbatch"):  # a dataset's own batches would set the images per reward
            validation = validation.unbatch().batch(validation_batch_size)
        # Its own order, saved with each epoch: a resumed search scores on the minibatches an uninterrupted one would.
        validation_batches = derivation.ResumableCycle(validation, validation_batch_size, [self.seed, VALIDATION_ORDER])
        if self._validation_order is not None:
            validation_batches.restore(self._validation_order)
        self._validation_batches = validation_batches
        self.on_search_begin()
        callbacks.on_train_begin()
        # What the next epoch will likely take: the last one, its save and callbacks included.
        last_epoch_seconds = self.history[-1]["seconds"] if self.history else None
        for epoch in range(self.epochs_done, inputs.epochs):
            start = time.time()
            if (
                time_budget is not None
                and last_epoch_seconds is not None
                and start - began + last_epoch_seconds + self._final_choice_seconds() > time_budget
            ):
                break
            # The schedule first: a LearningRateScheduler callback then has the last word.
            self.supernet.set_epoch(epoch)
            callbacks.on_epoch_begin(epoch)
            omega = self._omega_phase(train, inputs.batch_size)
            controller_began = time.time()
            theta = self._theta_phase(validation_batches) if self.sampler == "controller" else {}
            derivation_began = time.time()
            values, score = self._derive(validation_batches)
            self._record_trial(values, score, began=start)
            ended = time.time()
            self.epochs_done = epoch + 1
            self.history.append({
                "epoch": epoch, "seconds": ended - start, "derived_accuracy": score, **omega, **theta,
                # Where the epoch's time went: the shared weights' share is what a budget buys of them.
                "omega_seconds": controller_began - start, "controller_seconds": derivation_began - controller_began,
                "derivation_seconds": ended - derivation_began,
            })
            self._save_state()
            learning_rate = getattr(self.supernet.optimizer, "learning_rate", None)
            callbacks.on_epoch_end(epoch, search_inputs.epoch_logs(self.history[-1], self.oracle.objective.name, learning_rate))
            last_epoch_seconds = time.time() - start
            if self.supernet.model.stop_training:
                break
        if self._final_choice_due():
            self._final_choice(inputs, train)
        callbacks.on_train_end()
        self.on_search_end()

    def _omega_phase(self, train, batch_size):
        began, seen, losses, accuracies = time.time(), 0, [], []
        recent_images = collections.deque(maxlen=CALIBRATION_BATCHES)
        for images, labels in minibatches(train, batch_size, self.rng):
            if self.omega_sampler == "fair":
                children = self.space.fair_encodings(int(self.rng.integers(2**31)))
                result = self.supernet.fair_train_step(images, labels, children)
            else:
                children = [self._omega_child()]
                result = self.supernet.train_step(images, labels, children[0])
            losses.append(result["loss"])
            accuracies.append(result["accuracy"])
            recent_images.append(images)
            seen += len(images) * len(children)
        self._calibration_images = np.concatenate(list(recent_images))
        loss = float(np.mean([float(v) for v in losses]))
        if not np.isfinite(loss):
            raise FloatingPointError(f"The shared weights diverged: mean training loss {loss}.")
        return {
            "train_loss": loss,
            "train_accuracy": float(np.mean([float(v) for v in accuracies])),
            # Per image a child sees: what a fine-tuning step costs per image.
            "omega_seconds_per_image": (time.time() - began) / max(seen, 1),
        }

    def _theta_phase(self, validation_batches):
        stats = []
        for _ in range(self.controller_steps * self.controller_batch):
            images, labels = next(validation_batches)
            encoding, sample = self.sample_architecture()
            step = self.learner.add_reward(sample.actions, float(self.supernet.eval_step(images, labels, encoding)))
            if step is not None:  # Every `controller_batch` rewards.
                stats.append(step)
        return {key: float(np.mean([s[key] for s in stats])) for key in ("reward", "baseline", "entropy", "loss")}

    def _derive(self, validation_batches):
        """The best of `derive_samples` sampled architectures and its score (`derivation.derive`)."""
        score, encoding, self._finalists = derivation.derive(
            self.supernet, lambda: self.sample_architecture()[0], validation_batches, self.derive_samples,
            self.derive_finalists, self._calibration_images,
        )
        return self.space.decode(encoding), score


__all__ = ["ENASTuner"]
