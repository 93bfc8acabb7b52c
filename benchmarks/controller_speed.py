"""Controller speed: sampling one architecture and one REINFORCE update.

Targets on a 2-core CPU: sampling a 24-decision architecture in at most 2 ms,
an update on 8 architectures in at most 20 ms. Prints the median of repeated
timings for the vanilla NAS settings (2 x 35 LSTM) and the ENAS ones (1 x 64),
on 24 decisions made of per-layer tokens and skip-connection attention.

    python benchmarks/controller_speed.py
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_rlnas.controller import Controller, Decision  # noqa: E402


def vanilla_decisions(layers=6):
    """4 decisions a layer (3 tokens and the skip anchor): 24 for 6 layers."""
    decisions = []
    for i in range(layers):
        for token in ("filter_height", "filter_width", "num_filters"):
            decisions.append(Decision(f"layers[{i}].{token}", "categorical", size=4, key=f"layers.{token}"))
        decisions.append(Decision(f"layers[{i}].skip", "skip", size=i, group="layers", anchor=i))
    return decisions


def enas_macro_decisions(layers=12):
    """2 decisions a layer (op and skip inputs): 24 for 12 layers."""
    decisions = []
    for i in range(layers):
        decisions.append(Decision(f"layers[{i}].op", "categorical", size=6, key="layers.op"))
        decisions.append(Decision(f"layers[{i}].skip", "skip", size=i, group="layers", anchor=i))
    return decisions


def median_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    print(f"{'setting':<12} {'decisions':>9} {'sample ms':>10} {'update(8) ms':>13}")
    for name, preset, decisions in (
        ("nas", "nas", vanilla_decisions()),
        ("enas_macro", "enas_macro", enas_macro_decisions()),
    ):
        controller = Controller.from_preset(preset, decisions, seed=0)
        for _ in range(20):
            controller.sample()
        batch = [controller.sample() for _ in range(8)]
        rewards = [i / 8 for i in range(8)]
        controller.update(batch, rewards)  # traces the graph once
        sample_ms = median_ms(controller.sample, 500)
        update_ms = median_ms(lambda c=controller, b=batch, r=rewards: c.update(b, r), 100)
        print(f"{name:<12} {len(decisions):>9} {sample_ms:>10.2f} {update_ms:>13.2f}")


if __name__ == "__main__":
    main()
