"""Dependable RL search on Keras Tuner's chief/worker gRPC mode.

- `DistributedSearch`: tuner mixin (in `RLSearch`): the chief serves with
  `serve`, workers talk through `WorkerClient`.
- `serve`: the chief's loop: lost trials expire, the chief stops when the
  search is over.
- `WorkerClient`: back-off on IDLE, heartbeats, error text, retries while the
  chief restarts.
- `launch` / `main`: start a chief and workers (`python -m keras_rlnas.distributed`).

See `docs/distributed.md`.
"""

from keras_rlnas.distributed.launcher import gpu_groups, launch, main
from keras_rlnas.distributed.leases import TrialLeases
from keras_rlnas.distributed.protocol import HEARTBEAT_METRIC, MESSAGE_KEY, is_chief, is_worker
from keras_rlnas.distributed.tuner import DistributedSearch


def serve(oracle, **kwargs):
    """See `keras_rlnas.distributed.chief.serve` (imported on use: it needs gRPC)."""
    from keras_rlnas.distributed.chief import serve as _serve

    return _serve(oracle, **kwargs)


def __getattr__(name):
    if name == "WorkerClient":
        from keras_rlnas.distributed.client import WorkerClient

        return WorkerClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HEARTBEAT_METRIC",
    "MESSAGE_KEY",
    "DistributedSearch",
    "TrialLeases",
    "WorkerClient",
    "gpu_groups",
    "is_chief",
    "is_worker",
    "launch",
    "main",
    "serve",
]
