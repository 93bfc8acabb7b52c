"""Few-shot sub-supernets: do children rank better on their own group's copy of the shared weights?

Method
------
The children, their standalone scores, the validation and calibration images
are those of a saved `enas_ranking.py --json` run (`--standalone-from`, same
`--seed`, `--pool` and `--children`), so only the shared-weight side is new.

1. One-shot supernet: trained as `enas_ranking.py` trains it (uniform ENAS
   epochs, `--supernet-seed`), or loaded with `--load-supernet` (a file of
   `Supernet.save`; `--save-supernet` writes one).
2. Scores, each recalibrated on the same calibration images and measured on
   the same validation images:
   - one-shot: the supernet as trained;
   - control: the supernet trained `--few-shot-epochs` more epochs with all
     children (the same learning-rate schedule as a sub-supernet), and again
     as many epochs as every split's sub-supernets take in all (equal
     compute); `--no-controls` skips both;
   - each split of `--splits` (`convs`: by conv count, `ConvCountGroups`;
     `layer0`: by layer 0's op, as in Few-shot NAS): sub-supernets from the
     one-shot weights, each trained `--few-shot-epochs` epochs on its own
     group's children (`keras_rlnas.supernet.few_shot.FewShotSupernets`),
     every child scored on its own group's copy;
   - with `--fine-tune-steps N` (0 by default), every score above also
     after `N` steps of the child alone (`fine_tuned_accuracy`).
3. Kendall tau-b of each score against the mean standalone score, with its
   90 % bootstrap interval and fraction of the noise ceiling, and its tau
   with the child's conv count (the one-shot weights' known bias; standalone
   training's own is shown for comparison).

Commands
--------
    python benchmarks/enas_few_shot.py --standalone-from benchmarks/results/enas_ranking_macro_separate_weights_batch128.json
    python benchmarks/enas_few_shot.py --standalone-from ... --supernet-seed 2 --save-supernet /tmp/s2.npz
    python benchmarks/enas_few_shot.py --standalone-from ... --load-supernet /tmp/s2.npz --fine-tune-steps 100
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import enas_ranking as ranking  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import rank_statistics  # noqa: E402
import ranking_children  # noqa: E402
import ranking_scores  # noqa: E402

import keras_rlnas  # noqa: E402
from keras_rlnas.supernet import build_supernet  # noqa: E402
from keras_rlnas.supernet.few_shot import (  # noqa: E402
    FEW_SHOT_EPOCHS,
    FEW_SHOT_LEARNING_RATE,
    ConvCountGroups,
    FewShotSupernets,
)
from keras_rlnas.supernet.fine_tuning import fine_tuned_accuracy  # noqa: E402
from keras_rlnas.tuners.derivation import cycle  # noqa: E402


def parse_arguments():
    parser = ranking.argument_parser(__doc__.split("\n")[0])
    parser.add_argument("--load-supernet", default=None, help="a Supernet.save file to score instead of training")
    parser.add_argument("--save-supernet", default=None, help="write the trained one-shot supernet here")
    parser.add_argument("--few-shot-epochs", type=int, default=FEW_SHOT_EPOCHS, help="epochs per sub-supernet")
    parser.add_argument("--few-shot-learning-rate", type=float, default=FEW_SHOT_LEARNING_RATE)
    parser.add_argument("--splits", default="convs", help="comma-separated: convs, layer0")
    parser.add_argument("--controls", action=argparse.BooleanOptionalAction, default=True,
                        help="score the one-shot supernet trained on further (--no-controls skips them)")
    parser.set_defaults(fine_tune_steps=0)
    args = ranking.parse_arguments(parser)
    if not args.standalone_from:
        parser.error("--standalone-from is required: the standalone scores come from a saved enas_ranking.py run.")
    if args.supernet_seed is None:
        args.supernet_seed = args.seed
    return args


def layer0_op(space):
    """Few-shot NAS's split: the op of the first layer."""
    if not isinstance(space, keras_rlnas.ENASMacro):
        raise ValueError("--splits layer0 needs the macro space.")
    return lambda encoding: int(space.parse(encoding)[0][0])


def one_shot_supernet(space, x, y, args):
    """The uniformly trained supernet, loaded or trained as enas_ranking.py trains it."""
    if args.load_supernet:
        supernet = build_supernet(space, **ranking.supernet_options(args))
        supernet.load(args.load_supernet)
        print(f"supernet loaded from {args.load_supernet}", flush=True)
        return supernet, 0.0
    keras.utils.set_random_seed(args.supernet_seed)
    tuner = keras_rlnas.ENASTuner(
        space, sampler=args.sampler, seed=args.supernet_seed, batch_size=args.supernet_batch,
        supernet_options=ranking.supernet_options(args), derive_samples=10,
        directory=tempfile.mkdtemp(prefix="enas_few_shot_"), project_name="few_shot", verbose=0,
    )
    start = time.time()
    tuner.search(x, y, validation_data=(x[:256], y[:256]), epochs=args.supernet_epochs)
    seconds = time.time() - start
    print(f"supernet: {args.supernet_epochs} {args.sampler} epochs, seed {args.supernet_seed}, {seconds:.0f} s; "
          f"training accuracy {tuner.history[-1]['train_accuracy']:.3f}", flush=True)
    if args.save_supernet:
        tuner.supernet.save(args.save_supernet)
    return tuner.supernet, seconds


def main():
    args = parse_arguments()
    began = time.time()
    print(f"few-shot ranking benchmark: {vars(args)}")
    print(f"code: {ranking.source_state()}", flush=True)
    (x, y), (x_val, y_val), _, info = keras_rlnas.datasets.load_arrays("fashion_mnist", limit=args.limit)
    x_val, y_val = x_val[: args.validation], y_val[: args.validation]
    if args.space == "macro":
        space = keras_rlnas.ENASMacro(info.input_shape, info.num_classes, num_layers=args.layers, filters=args.filters)
    else:
        space = keras_rlnas.ENASMicro(info.input_shape, info.num_classes, num_cells=args.layers, filters=args.filters)
    # The same draws as enas_ranking.py: children first, then the calibration images.
    rng = np.random.default_rng(args.seed + 1)
    encodings, _ = ranking_children.stratified_children(space, args.children, args.pool, rng)
    calibration = x[rng.choice(len(x), min(args.calibration, len(x)), replace=False)]
    standalone = np.array([scores for scores, _ in ranking_scores.saved_standalone(args, encodings)])
    reference = standalone.mean(axis=1)
    convs = [ranking_children.features(space, encoding)[0] for encoding in encodings]
    supernet, supernet_seconds = one_shot_supernet(space, x, y, args)

    pool = [space.random_encoding(int(seed)) for seed in rng.integers(2**31, size=args.pool)]
    steps_per_epoch = len(x) // args.supernet_batch
    splits = {name: FewShotSupernets(supernet, {"convs": ConvCountGroups(space), "layer0": layer0_op(space)}[name])
              for name in args.splits.split(",") if name}
    group_counts = {name: len({split.group_of(e) for e in pool}) for name, split in splits.items()}
    methods = {"one-shot": None}
    if args.controls:
        methods["control"] = FewShotSupernets(supernet, lambda encoding: "all")
        for total in sorted(set(group_counts.values()) - {1}):
            methods[f"control x{total}"] = (FewShotSupernets(supernet, lambda encoding: "all"), total)
    methods.update(splits)

    scores, seconds = {}, {}
    for name, method in methods.items():
        start = time.time()
        multiple = 1
        if isinstance(method, tuple):
            method, multiple = method
        if method is not None:
            batches = cycle((x, y), args.supernet_batch, np.random.default_rng(args.seed + 7))
            method.train(batches, pool, args.few_shot_epochs * multiple * steps_per_epoch,
                         learning_rate=args.few_shot_learning_rate, seed=args.seed)
        evaluate = supernet.evaluate if method is None else method.evaluate
        scores[name] = np.array([evaluate(x_val, y_val, e, calibration_images=calibration) for e in encodings])
        if args.fine_tune_steps:
            tuned = []
            for index, encoding in enumerate(encodings):
                batches = ranking_scores.child_batches(x, y, args.fine_tune_batch, args.seed * 1000 + index)
                # A sub-supernet's child fine-tunes from its own group's weights.
                with contextlib.nullcontext() if method is None else method.weights_for(encoding):
                    tuned.append(fine_tuned_accuracy(supernet, encoding, batches, x_val, y_val, args.fine_tune_steps,
                                                     args.fine_tune_learning_rate, calibration))
            scores[name + " + fine-tuned"] = np.array(tuned)
        seconds[name] = time.time() - start
        print(f"  {name}: {time.time() - start:.0f} s, load {os.getloadavg()[0]:.1f}", flush=True)

    indices = rank_statistics.bootstrap_indices(len(encodings), args.bootstrap, rng)
    print(f"\nKendall tau-b over {len(encodings)} children against mean standalone (90% bootstrap intervals)")
    ceiling = rank_statistics.tau_block("noise ceiling: standalone seed 1 vs seed 2", standalone[:, 0],
                                        standalone[:, 1], indices, rng, args.permutations)
    ceiling_draws = rank_statistics.bootstrap_taus(standalone[:, 0], standalone[:, 1], indices)
    results = {"ceiling": ceiling}
    for name, score in scores.items():
        results[name] = rank_statistics.tau_block(name, score, reference, indices, rng, args.permutations,
                                                 (ceiling["tau"], ceiling_draws))
        results[name]["conv_tau"] = rank_statistics.kendall_tau_b(score, convs)
        results[name]["mean_accuracy"] = float(score.mean())
    print(f"\n{'score':<28} {'tau':>7} {'tau with convs':>15} {'mean accuracy':>14}")
    print(f"{'standalone (mean of 2)':<28} {'':>7} {rank_statistics.kendall_tau_b(reference, convs):>+15.3f} {reference.mean():>14.3f}")
    for name in scores:
        r = results[name]
        print(f"{name:<28} {r['tau']:>+7.3f} {r['conv_tau']:>+15.3f} {r['mean_accuracy']:>14.3f}")
    total = time.time() - began
    print(f"time: supernet {supernet_seconds:.0f} s, " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
          + f"; total {total:.0f} s ({total / 60:.1f} min)")
    if args.json:
        record = {
            "arguments": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
            "code": ranking.source_state(),
            "groups": group_counts,
            "scores": {name: score.tolist() for name, score in scores.items()},
            "standalone": standalone.tolist(),
            "taus": results,
            "seconds": dict(seconds, supernet=supernet_seconds, total=total),
        }
        with open(args.json, "w") as file:
            json.dump(record, file, indent=1, default=float)
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
