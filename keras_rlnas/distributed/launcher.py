"""Starts a search script as a chief and workers, restarts the ones that crash.

Keras Tuner's chief/worker mode runs the *same* script in every process; the
role comes from environment variables. This module sets them:

    # One machine: a chief and 4 workers, one GPU each.
    python -m keras_rlnas.distributed launch --workers 4 --gpus 0,1,2,3 -- python search.py

    # Several machines: the chief on one, workers anywhere that can reach it.
    python -m keras_rlnas.distributed chief --host 0.0.0.0 --port 8470 -- python search.py
    python -m keras_rlnas.distributed worker --chief chief-host:8470 --id w3 --gpus 1 -- python search.py

See `docs/distributed.md`.
"""

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from keras_rlnas import _checks as checks
from keras_rlnas.distributed import protocol

logger = logging.getLogger(__name__)


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def gpu_groups(gpus, workers, gpus_per_worker=1):
    """`CUDA_VISIBLE_DEVICES` of each worker: consecutive groups, reused in turn.

    Args:
        gpus: GPU ids, e.g. `["0", "1", "2", "3"]`; empty leaves them alone.
        workers: number of workers.
        gpus_per_worker: GPUs each worker sees (for a per-child
            `distribution_strategy` such as `tf.distribute.MirroredStrategy()`).

    Returns:
        One string (or `None`: unchanged) per worker.

    Example:

    >>> gpu_groups(["0", "1", "2", "3"], workers=3, gpus_per_worker=2)
    ['0,1', '2,3', '0,1']
    """
    if not gpus:
        return [None] * workers
    if gpus_per_worker < 1 or gpus_per_worker > len(gpus):
        raise ValueError(f"`gpus_per_worker` must be between 1 and {len(gpus)} (the GPUs given), got {gpus_per_worker!r}.")
    groups = [",".join(gpus[i : i + gpus_per_worker]) for i in range(0, len(gpus) - gpus_per_worker + 1, gpus_per_worker)]
    return [groups[i % len(groups)] for i in range(workers)]


def role_env(tuner_id, host, port, gpus=None, base=None, recycle_after=None):
    """The environment of one process of the search.

    Args:
        tuner_id: `"chief"` or a worker id (which must not contain "chief").
        host: the chief's address (the chief listens on it).
        port: the chief's port.
        gpus: the `CUDA_VISIBLE_DEVICES` value, `""` for none, `None` unchanged.
        base: the environment to extend (default: this process's).
        recycle_after: a worker exits after this many trials, to be restarted.
    """
    if tuner_id != "chief" and "chief" in tuner_id:
        raise ValueError(f"A worker id must not contain 'chief' (Keras Tuner would take it for the chief), got {tuner_id!r}.")
    env = dict(os.environ if base is None else base)
    env.update({protocol.TUNER_ID_ENV: tuner_id, protocol.ORACLE_IP_ENV: host, protocol.ORACLE_PORT_ENV: str(port)})
    env.pop(protocol.RESUME_ENV, None)
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpus
    if recycle_after is not None:
        # 0 or less would recycle a worker before its first trial, forever.
        env[protocol.RECYCLE_ENV] = str(checks.positive_int("recycle_after", recycle_after))
    return env


class Supervised:
    """A child process restarted (up to `restarts` times) when it crashes.

    A worker that exits with `RECYCLE_EXIT_CODE` (see `recycle_after`) is
    started again whatever `restarts` says.
    """

    def __init__(self, name, command, env, restarts=0, log_dir=None):
        self.name, self.command, self.env, self.restarts = name, list(command), env, restarts
        self.log_dir = log_dir
        self.starts = 0
        self.recycled = 0
        self.process = None
        self.returncode = None
        self.given_up = False

    def start(self):
        env = dict(self.env)
        if self.starts > self.recycled:
            env[protocol.RESUME_ENV] = "1"
        out = None
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
            out = open(os.path.join(self.log_dir, f"{self.name}.log"), "ab")
        self.process = subprocess.Popen(self.command, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
        if out:
            out.close()
        self.starts += 1
        self.returncode = None
        logger.info("Started %s (pid %d, start %d).", self.name, self.process.pid, self.starts)

    def poll(self, may_restart=True):
        """Returns `"running"`, `"done"` (exit 0) or `"failed"`; restarts a crash if allowed."""
        if self.returncode is None:
            self.returncode = self.process.poll()
        if self.returncode is None:
            return "running"
        if self.returncode == 0:
            return "done"
        if may_restart and self.returncode == protocol.RECYCLE_EXIT_CODE:
            self.recycled += 1
            self.start()
            return "running"
        if may_restart and self.starts - self.recycled <= self.restarts:
            logger.warning("%s exited with %d; restarting it.", self.name, self.returncode)
            time.sleep(1.0)  # Not a hot loop if it dies at once.
            self.start()
            return "running"
        if may_restart and not self.given_up:
            self.given_up = True
            logger.error("%s exited with %d after %d restart(s) of %d; giving it up.", self.name, self.returncode,
                         self.starts - self.recycled - 1, self.restarts)
        return "failed"

    def stop(self, timeout=10.0):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def supervise(chief, workers, poll_interval=0.2, grace=60.0, stop=None):
    """Runs `chief` (may be `None`) and `workers` to the end; returns an exit code.

    `stop`, a `threading.Event`, ends everything early (exit code 1); so does
    a chief left without a worker, every one having failed past its restarts.
    """
    everyone = ([chief] if chief else []) + workers
    for child in everyone:
        child.start()
    try:
        while True:
            if stop is not None and stop.is_set():
                return 1
            chief_state = chief.poll() if chief else None
            worker_states = [w.poll(may_restart=chief_state in (None, "running")) for w in workers]
            if chief_state == "failed":
                return chief.returncode if chief.returncode > 0 else 1
            if chief_state == "done" or (chief is None and "running" not in worker_states):
                break
            if chief_state == "running" and workers and set(worker_states) == {"failed"}:
                # No worker is left to run the chief's trials: it would wait for them forever.
                logger.error("Every worker failed past its restarts; stopping the chief.")
                return 1
            time.sleep(poll_interval)
        deadline = time.monotonic() + grace
        while any(w.poll(may_restart=False) == "running" for w in workers) and time.monotonic() < deadline:
            time.sleep(poll_interval)
        if chief is None:
            return 1 if any(w.returncode for w in workers) else 0
        return 0
    finally:
        for child in everyone:
            child.stop()


def launch(command, workers=1, host="127.0.0.1", port=0, gpus=(), gpus_per_worker=1, chief_gpus="",
           restarts=0, chief_restarts=None, recycle_after=None, log_dir=None, grace=60.0, stop=None):
    """Runs `command` as a chief and `workers` workers on this machine.

    Args:
        command: the search script, e.g. `["python", "search.py"]`.
        workers: number of workers (ids `worker0`, `worker1`, ...).
        host: address the chief listens on and workers connect to.
        port: the chief's port; 0 picks a free one.
        gpus: GPU ids to share out (see `gpu_groups`); empty leaves
            `CUDA_VISIBLE_DEVICES` alone for the workers.
        gpus_per_worker: GPUs each worker sees.
        chief_gpus: `CUDA_VISIBLE_DEVICES` of the chief; `""` (default)
            hides the GPUs, which TensorFlow would otherwise claim.
        restarts: times each worker is restarted after a crash; a worker
            restarted in time gets its unfinished trial back.
        chief_restarts: times the chief is restarted after a crash (it
            resumes the search: `overwrite=False`); default: `restarts`.
        recycle_after: each worker exits after this many trials and is
            started afresh, which bounds the memory TensorFlow keeps from
            the models it trained (see `docs/distributed.md`).
        log_dir: directory of one log per process; default: this terminal.
        grace: seconds the workers get to exit after the chief is done.
        stop: a `threading.Event` that stops the search and every process
            (for a launch in a thread).

    Returns:
        0 when the search finished, else the chief's exit code.

    Example:

    ```python
    from keras_rlnas.distributed import launch
    launch(["python", "search.py"], workers=2, gpus=["0", "1"], restarts=3)
    ```
    """
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"`workers` must be an int >= 1, got {workers!r}.")
    if recycle_after is not None:
        checks.positive_int("recycle_after", recycle_after)
    checks.positive_int("restarts", restarts, minimum=0)
    if chief_restarts is not None:
        checks.positive_int("chief_restarts", chief_restarts, minimum=0)
    port = port or free_port(host if host not in ("0.0.0.0", "::") else "127.0.0.1")
    connect = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    chief_restarts = restarts if chief_restarts is None else chief_restarts
    chief = Supervised("chief", command, role_env("chief", host, port, chief_gpus), chief_restarts, log_dir)
    groups = gpu_groups(list(gpus), workers, gpus_per_worker)
    crew = [
        Supervised(f"worker{i}", command, role_env(f"worker{i}", connect, port, groups[i], recycle_after=recycle_after),
                   restarts, log_dir)
        for i in range(workers)
    ]
    logger.info("Chief on %s:%d with %d workers.", host, port, workers)
    return supervise(chief, crew, grace=grace, stop=stop)


_AT_LEAST_ONE = checks.command_line_number(int, 0, strict=True)
_AT_LEAST_ZERO = checks.command_line_number(int, 0, strict=False)


def _split_command(argv):
    if "--" not in argv:
        if "-h" in argv or "--help" in argv:
            return argv, []
        raise SystemExit("Give the search command after `--`, e.g. `... -- python search.py`.")
    at = argv.index("--")
    if at == len(argv) - 1:
        raise SystemExit("The command after `--` is empty.")
    return argv[:at], argv[at + 1 :]


def _gpus(value):
    return [g for g in value.split(",") if g] if value else []


def main(argv=None):
    """Command line: `chief`, `worker` or `launch`, then `--` and the search command.

    Args:
        argv: arguments without the program name (default: `sys.argv[1:]`).

    Returns:
        The exit code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    own, command = _split_command(argv)
    parser = argparse.ArgumentParser(prog="python -m keras_rlnas.distributed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = parser.add_subparsers(dest="role", required=True)
    launch_p = roles.add_parser("launch", help="a chief and N workers on this machine")
    launch_p.add_argument("--workers", type=_AT_LEAST_ONE, default=1, help="number of workers")
    launch_p.add_argument("--host", default="127.0.0.1")
    launch_p.add_argument("--port", type=int, default=0, help="0: a free port")
    launch_p.add_argument("--gpus", default="", help="GPU ids to share out, e.g. 0,1,2,3")
    launch_p.add_argument("--gpus-per-worker", type=_AT_LEAST_ONE, default=1)
    launch_p.add_argument("--chief-gpus", default="", help="CUDA_VISIBLE_DEVICES of the chief (none by default)")
    launch_p.add_argument("--chief-restarts", type=_AT_LEAST_ZERO, default=None, help="default: --restarts")
    chief_p = roles.add_parser("chief", help="the chief only")
    chief_p.add_argument("--host", default="0.0.0.0")
    chief_p.add_argument("--port", type=int, required=True)
    chief_p.add_argument("--gpus", default="", help="CUDA_VISIBLE_DEVICES of the chief (none by default)")
    worker_p = roles.add_parser("worker", help="one worker of a chief elsewhere")
    worker_p.add_argument("--chief", required=True, help="host:port of the chief")
    worker_p.add_argument("--id", required=True, help="a worker id unique in the search")
    worker_p.add_argument("--gpus", default=None, help="CUDA_VISIBLE_DEVICES of this worker")
    for sub in (launch_p, worker_p):
        sub.add_argument("--recycle-after", type=_AT_LEAST_ONE, default=None, help="restart each worker after N trials")
    for sub in (launch_p, chief_p, worker_p):
        sub.add_argument("--restarts", type=_AT_LEAST_ZERO, default=0, help="restarts after a crash")
        sub.add_argument("--log-dir", default=None, help="one log file per process")
        sub.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(own)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="[launcher] %(message)s")
    if threading.current_thread() is not threading.main_thread():
        return _run(args, command)
    # A terminated launcher takes its children with it (supervise's finally).
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return _run(args, command)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args, command):
    if args.role == "launch":
        return launch(command, args.workers, args.host, args.port, _gpus(args.gpus), args.gpus_per_worker,
                      args.chief_gpus, args.restarts, args.chief_restarts, args.recycle_after, args.log_dir)
    if args.role == "chief":
        chief = Supervised("chief", command, role_env("chief", args.host, args.port, args.gpus), args.restarts, args.log_dir)
        return supervise(chief, [])
    host, _, port = args.chief.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--chief must be host:port, got {args.chief!r}.")
    env = role_env(args.id, host, int(port), args.gpus, recycle_after=args.recycle_after)
    worker = Supervised(args.id, command, env, args.restarts, args.log_dir)
    return supervise(None, [worker])
