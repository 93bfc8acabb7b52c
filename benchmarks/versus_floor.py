"""The main job's child against the floor trained for the same wall time in the same run.

`scripts/demo.sh` runs the main job (search, report, retrain, export), times it, trains
`peers.py`'s 2-conv + BN CNN for that time into `RUN/floor.jsonl`, then calls this script:
it prints both test accuracies and the margin, and writes them to `RUN/versus_floor.json`.

Usage: python benchmarks/versus_floor.py RUN_DIRECTORY MAIN_JOB_SECONDS
"""

import argparse
import json
from pathlib import Path

from peers_results import read_results


def compare(run_directory, main_job_seconds):
    """The child's and the floor's test accuracies in `run_directory`, and the child's margin over the floor.

    Args:
        run_directory: the main job's directory, holding `best/retrain.json` (written by
            `keras-rlnas retrain`) and `floor.jsonl` (written by `peers.py --results`).
        main_job_seconds: the main job's measured wall time, the floor's budget.

    Returns:
        A dict of `main_job_seconds`, `child_parameters`, `child_test_accuracy`,
        `floor_test_accuracy`, `floor_epochs` and `margin` (child minus floor).
    """
    run = Path(run_directory)
    child = json.loads((run / "best" / "retrain.json").read_text())
    floors = read_results(run / "floor.jsonl")
    if not floors:
        raise ValueError(f"run_directory={str(run)!r} holds no floor cell in floor.jsonl; run peers.py with "
                         f"--results {run / 'floor.jsonl'} first.")
    floor = floors[-1]
    return {"main_job_seconds": float(main_job_seconds), "child_parameters": child["params"],
            "child_test_accuracy": child["test_accuracy"], "floor_test_accuracy": floor["test_accuracy"],
            "floor_epochs": floor.get("details", {}).get("final_epochs"),
            "margin": child["test_accuracy"] - floor["test_accuracy"]}


def standing(margin):
    """`margin` (child minus floor) in words, e.g. `"ahead of the floor by 0.0025"`."""
    if margin > 0:
        return f"ahead of the floor by {margin:.4f}"
    if margin < 0:
        return f"behind the floor by {-margin:.4f}"
    return "level with the floor"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_directory")
    parser.add_argument("main_job_seconds", type=float)
    args = parser.parse_args()
    try:
        result = compare(args.run_directory, args.main_job_seconds)
    except ValueError as error:
        parser.error(str(error))
    minutes = result["main_job_seconds"] / 60
    print(f"Main job, {minutes:.1f} min in all: the searched child ({result['child_parameters']:,} parameters) "
          f"scores {result['child_test_accuracy']:.4f} test accuracy.")
    print(f"The 2-conv + BN CNN trained on the same images for the same {minutes:.2f} min "
          f"({result['floor_epochs']} epochs): {result['floor_test_accuracy']:.4f}.")
    print(f"The search's child is {standing(result['margin'])}.")
    (Path(args.run_directory) / "versus_floor.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
