"""The scores `enas_ranking.py` sets side by side: each child on the shared weights and trained alone.

Shared-weight scores (batch statistics, BN recalibration, the fine-tuned
score) with the samples of their reward noise, and the standalone scores of
two seeds, trained or read back from a saved run (`--standalone-from`).
`enas_few_shot.py` reads the same saved runs and fine-tunes with the same
minibatch streams.
"""

import gc
import json
import time

import keras
import numpy as np
from ranking_report import RECALIBRATED_DRAWS

import keras_rlnas
from keras_rlnas.retrain import retrain
from keras_rlnas.supernet.fine_tuning import fine_tuned_accuracy


def correct_flags(supernet, arch, images, labels, batch_size=256):
    """Per-image correctness of child `arch` in inference mode (the current moving statistics)."""
    flags = []
    for start in range(0, len(images), batch_size):
        probabilities = np.asarray(supernet.predict(images[start : start + batch_size], arch))
        flags.append(probabilities.argmax(axis=-1) == labels[start : start + batch_size])
    return np.concatenate(flags)


def shared_scores(supernet, arch, x_val, y_val, calibration, x, args, rng):
    """Both shared-weight scores of a child and the samples of their noise.

    Returns a dict: `batch_stats`, `recalibrated` (full-validation accuracies),
    `batch_noise[n]` and `recal_noise[n]` (accuracies on random minibatches of
    n validation images), `calibration_scores` (recalibrated accuracies with
    other random calibration sets) and `mismatch` (recalibrated `evaluate`
    against the per-image count of `predict`, which should agree).
    """
    result = {"batch_stats": supernet.evaluate(x_val, y_val, arch)}
    result["recalibrated"] = supernet.evaluate(x_val, y_val, arch, calibration_images=calibration)
    flags = correct_flags(supernet, arch, x_val, y_val)
    result["mismatch"] = abs(float(flags.mean()) - result["recalibrated"])
    result["batch_noise"], result["recal_noise"] = {}, {}
    for n in args.noise_sizes:
        draws = [rng.integers(0, len(x_val), n) for _ in range(args.noise_draws)]
        result["batch_noise"][n] = [
            float(supernet.eval_step(x_val[index], y_val[index], arch)) for index in draws
        ]
        # The recalibrated reward is a mean of fixed per-image flags: many draws cost nothing.
        result["recal_noise"][n] = [
            float(flags[rng.integers(0, len(flags), n)].mean()) for _ in range(RECALIBRATED_DRAWS)
        ]
    result["calibration_scores"] = [
        supernet.evaluate(
            x_val,
            y_val,
            arch,
            calibration_images=x[rng.choice(len(x), len(calibration), replace=False)],
        )
        for _ in range(args.calibration_draws)
    ]
    return result


def standalone_score(space, encoding, x, y, x_val, y_val, epochs, batch, seed):
    """`(validation accuracy, parameters)` of the child trained from scratch with `seed`."""
    keras.utils.set_random_seed(seed)
    # Short standalone training is plain: no final-training drop-path or auxiliary head.
    plain = (
        {"drop_path": 0.0, "auxiliary_weight": 0.0}
        if isinstance(space, keras_rlnas.ENASMicro)
        else {}
    )
    model = retrain(
        space, space.decode(encoding), x, y, epochs=epochs, batch_size=batch, seed=seed, **plain
    )
    accuracy = float(model.evaluate(x_val, y_val, batch_size=256, verbose=0)[1])
    params = int(model.count_params())
    del model
    keras.backend.clear_session()
    gc.collect()
    return accuracy, params


STANDALONE_SETTINGS = ("space", "layers", "filters", "limit", "validation", "standalone_epochs", "standalone_seeds", "batch")


def saved_standalone(args, encodings):
    """`[(scores, params)]` per child from `--standalone-from`, or `None` without it.

    Raises `ValueError` when the saved run trained other children or trained
    them otherwise.
    """
    if not args.standalone_from:
        return None
    with open(args.standalone_from) as file:
        saved = json.load(file)
    for key in STANDALONE_SETTINGS:
        mine, theirs = vars(args)[key], saved["arguments"][key]
        if (list(mine) if isinstance(mine, (list, tuple)) else mine) != theirs:
            raise ValueError(f"--standalone-from ran with {key}={theirs!r}, this run has {mine!r}.")
    children = saved["children"]
    if [child["encoding"] for child in children] != [encoding.tolist() for encoding in encodings]:
        raise ValueError("--standalone-from scored other children (its --seed, --pool or --children differ).")
    print(f"standalone scores reused from {args.standalone_from} ({saved['code']})", flush=True)
    return [(np.array(child["standalone"]), child["params"]) for child in children]


def child_batches(x, y, batch_size, seed):
    """Endless random training minibatches for one child's fine-tuning."""
    rng = np.random.default_rng(seed)
    while True:
        index = rng.integers(0, len(x), batch_size)
        yield x[index], y[index]


def score_on_shared_weights(args, supernet, encodings, x, y, x_val, y_val, rng):
    """Every child's shared-weight scores.

    Returns:
        `(shared, proxies, repeat_scores, calibration_size)`: each child's
        `shared_scores` dict, `{key: scores}` for the keys of `PROXY_LABELS`,
        the `(repeats, children)` fine-tuned scores (`None` without
        fine-tuning) and the number of calibration images.
    """
    calibration = x[rng.choice(len(x), min(args.calibration, len(x)), replace=False)]
    shared = []
    for index, encoding in enumerate(encodings):
        shared.append(shared_scores(supernet, encoding, x_val, y_val, calibration, x, args, rng))
        print(
            f"  shared {index:>2}: batch-stats {shared[-1]['batch_stats']:.4f}  recalibrated {shared[-1]['recalibrated']:.4f}",
            flush=True,
        )
    proxies = {key: np.array([s[key] for s in shared]) for key in ("batch_stats", "recalibrated")}
    repeat_scores = None
    if args.fine_tune_steps:
        start = time.time()
        repeat_scores = np.array([
            [
                fine_tuned_accuracy(
                    supernet, encoding,
                    child_batches(x, y, args.fine_tune_batch, args.seed * 1000 + index + 100000 * repeat),
                    x_val, y_val, steps=args.fine_tune_steps, learning_rate=args.fine_tune_learning_rate,
                    calibration_images=calibration,
                )
                for index, encoding in enumerate(encodings)
            ]
            for repeat in range(args.fine_tune_repeats)
        ])
        proxies["fine_tuned"] = repeat_scores.mean(axis=0)
        print(
            f"fine-tuned scores ({args.fine_tune_repeats} x {args.fine_tune_steps} steps of {args.fine_tune_batch} "
            f"images at learning rate {args.fine_tune_learning_rate}, recalibrated): {time.time() - start:.0f} s",
            flush=True,
        )
    return shared, proxies, repeat_scores, len(calibration)


def train_standalone(args, space, encodings, x, y, x_val, y_val):
    """`(standalone, params)`: `(children, 2)` validation accuracies of two seeds and each child's parameters."""
    standalone, params = np.zeros((len(encodings), 2)), []
    saved = saved_standalone(args, encodings)
    for index, encoding in enumerate(encodings):
        if saved is not None:
            standalone[index], child_params = saved[index]
            params.append(child_params)
            continue
        child_start = time.time()
        for run, seed in enumerate(args.standalone_seeds):
            standalone[index, run], child_params = standalone_score(
                space, encoding, x, y, x_val, y_val, args.standalone_epochs, args.batch, seed
            )
        params.append(child_params)
        print(
            f"  standalone {index:>2}: {standalone[index, 0]:.4f} {standalone[index, 1]:.4f}  "
            f"({time.time() - child_start:.0f} s)",
            flush=True,
        )
    return standalone, params
