"""What Grappler's graph passes cost an ENAS search on the CPU: its first epochs with and without them.

TensorFlow runs Grappler's passes over each traced function the first time
it runs it. The micro supernet's train step is a graph of about 50,000 nodes
(every candidate op of every cell behind `tf.switch_case`), and the passes
hold up the first minibatch for about a minute of this CPU.
`ENASTuner(grappler=False)` switches them off while `search()` runs; since
TensorFlow switches them only for a whole process, each setting runs in a
Python process of its own, the two alternating from round to round. Each
epoch is one `search()` call, so the setting is switched off and restored
around every epoch, as a search resumed or extended call by call would.

Each process builds an `ENASTuner` over the space `benchmarks/peers.py`
searches (micro: 1 cell per stage x 16 filters; macro: 6 layers x 24
filters), runs `--epochs` ENAS epochs on a `--images` slice of
Fashion-MNIST and reports wall and CPU seconds of the supernet's build and
of each epoch, split into the phases `tuner.history` records (omega,
controller, derivation). The first epoch carries every first-call cost;
the later ones show whether the steps run slower without the passes.

    python benchmarks/enas_startup.py                        # micro, about 8 minutes on 2 cores
    python benchmarks/enas_startup.py --space macro --rounds 2
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SETTINGS = ("grappler", "no-grappler")
RESULT_PREFIX = "RESULT "
PHASES = ("omega", "controller", "derivation")


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", choices=("micro", "macro"), default="micro")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=4000, help="training slice")
    parser.add_argument("--rounds", type=int, default=1, help="processes per setting, alternating")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    return parser.parse_args()


def clocks():
    return time.perf_counter(), time.process_time()


def since(began):
    wall, cpu = clocks()
    return {"wall": wall - began[0], "cpu": cpu - began[1]}


def run_worker(args):
    """One process, one setting: prints a `RESULT {json}` line."""
    from keras_rlnas import data
    from keras_rlnas.spaces import ENASMacro, ENASMicro
    from keras_rlnas.tuners import ENASTuner

    (x, y), validation, _, info = data.load_arrays("fashion_mnist", validation_size=5000, limit=args.images)
    if args.space == "micro":
        space = ENASMicro(info.input_shape, info.num_classes, num_cells=1, filters=16)
    else:
        space = ENASMacro(info.input_shape, info.num_classes, num_layers=6, filters=24)
    tuner = ENASTuner(space, seed=args.seed, directory=tempfile.mkdtemp(prefix="enas_startup_"), overwrite=True,
                      grappler=args.worker == "grappler", verbose=0)
    began = clocks()
    tuner._build_supernet()
    result = {"setting": args.worker, "build": since(began), "epochs": []}
    for epoch in range(args.epochs):
        began = clocks()
        tuner.search(x, y, validation_data=validation, epochs=epoch + 1)
        timings = since(began)
        timings.update({phase: tuner.history[-1][f"{phase}_seconds"] for phase in PHASES})
        result["epochs"].append(timings)
    result["derived_accuracy"] = [round(entry["derived_accuracy"], 4) for entry in tuner.history]
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_process(args, setting):
    command = [sys.executable, __file__, "--worker", setting, "--space", args.space, "--epochs", str(args.epochs),
               "--images", str(args.images), "--seed", str(args.seed)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"The {setting} process printed no result:\n{output}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def load_average():
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main():
    args = parse_arguments()
    if args.worker:
        return run_worker(args)
    print(f"{args.space} space, {args.epochs} ENAS epochs on {args.images} images, {args.rounds} round(s); "
          f"load average {load_average()}", flush=True)
    results = {setting: [] for setting in SETTINGS}
    for round_index in range(args.rounds):
        order = SETTINGS if round_index % 2 == 0 else SETTINGS[::-1]
        for setting in order:
            result = run_process(args, setting)
            results[setting].append(result)
            epochs = ", ".join(
                f"epoch {i + 1} {e['wall']:.1f} s (" + " / ".join(f"{e[p]:.1f}" for p in PHASES) + ")"
                for i, e in enumerate(result["epochs"])
            )
            print(f"  round {round_index + 1} {setting:<12} build {result['build']['wall']:.1f} s wall "
                  f"{result['build']['cpu']:.1f} s CPU; {epochs}; derived accuracy {result['derived_accuracy']}; "
                  f"load {load_average()}", flush=True)

    def median(setting, pick):
        return statistics.median(pick(result) for result in results[setting])

    rows = {
        "supernet build": lambda r: r["build"]["wall"],
        "first epoch": lambda r: r["epochs"][0]["wall"],
        "first epoch, CPU": lambda r: r["epochs"][0]["cpu"],
        "build + first epoch": lambda r: r["build"]["wall"] + r["epochs"][0]["wall"],
    }
    if args.epochs > 1:
        rows["later epochs (mean)"] = lambda r: statistics.mean(e["wall"] for e in r["epochs"][1:])
        for phase in PHASES:
            rows[f"  their {phase} phase"] = lambda r, p=phase: statistics.mean(e[p] for e in r["epochs"][1:])
    print(f"\nmedian over {args.rounds} round(s), seconds: with Grappler / without / ratio without:with")
    for name, pick in rows.items():
        with_passes, without = median("grappler", pick), median("no-grappler", pick)
        print(f"  {name:<22} {with_passes:8.1f} {without:8.1f}   {without / with_passes:.2f}")
    print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
