"""The worker's side of the chief/worker search: Keras Tuner's `OracleClient`, made dependable.

Differences from the stock client:

- IDLE answers are followed by a sleep that doubles from `min_idle_wait` to
  `max_idle_wait`, so a waiting worker makes a handful of calls a second;
- calls that find the chief gone (it crashed, it restarts) are retried until
  it is back, for up to `chief_timeout` seconds, and the connection is retried
  every second at most rather than after gRPC's default back-off of minutes;
- a thread sends a heartbeat for the running trial every
  `heartbeat_interval` seconds, so the chief can tell a dead worker;
- a failed trial's error text goes to the chief with the trial;
- with `$KERAS_RLNAS_RECYCLE_AFTER` set (by the launcher), the worker exits
  after that many trials for the launcher to start it afresh.
"""

import logging
import os
import random
import threading
import time

import grpc
from keras_tuner.engine import trial as trial_module
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_client

from keras_rlnas.distributed import protocol

logger = logging.getLogger(__name__)

TrialStatus = trial_module.TrialStatus

CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
# Codes of a call cut off by the chief going away (not of a chief that refused it).
RETRIED_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


class WorkerClient(oracle_client.OracleClient):
    """Proxy of the chief's oracle, used by a worker's tuner in place of Keras Tuner's.

    Args:
        oracle: the worker's own oracle (its options are read, its state is
            never used).
        min_idle_wait, max_idle_wait: bounds of the sleep after an IDLE answer.
        heartbeat_interval: seconds between heartbeats; by default a quarter
            of the oracle's `trial_timeout`, between 0.2 and 30 s.
        chief_timeout: seconds to keep retrying an unreachable chief;
            defaults to `$KERAS_RLNAS_CHIEF_TIMEOUT` or one hour.

    Example:

    ```python
    # What `keras_rlnas.distributed.DistributedSearch` does on a worker:
    tuner.oracle = WorkerClient(tuner.oracle._oracle)
    ```
    """

    def __init__(self, oracle, min_idle_wait=0.1, max_idle_wait=1.0, heartbeat_interval=None, chief_timeout=None):
        if not 0 < min_idle_wait <= max_idle_wait:
            raise ValueError(
                f"Need 0 < `min_idle_wait` <= `max_idle_wait`, got {min_idle_wait!r} and {max_idle_wait!r}."
            )
        # Not OracleClient.__init__: its channel would retry a lost chief
        # only after gRPC's default back-off, which grows to two minutes.
        self._oracle = oracle
        self._channel = grpc.insecure_channel(protocol.chief_address(), options=CHANNEL_OPTIONS)
        self._raw_stub = protos.get_service_grpc().OracleStub(self._channel)
        if chief_timeout is None:
            chief_timeout = float(os.environ.get(protocol.CHIEF_TIMEOUT_ENV, 3600))
        self.stub = _RetryingStub(self._raw_stub, chief_timeout)
        self.tuner_id = os.environ[protocol.TUNER_ID_ENV]
        self.multi_worker = False
        self.should_report = True
        self.min_idle_wait = min_idle_wait
        self.max_idle_wait = max_idle_wait
        self._idle_wait = min_idle_wait
        if heartbeat_interval is None:
            timeout = getattr(oracle, "trial_timeout", None)
            heartbeat_interval = min(max(timeout / 4, 0.2), 30.0) if timeout else None
        self.heartbeat_interval = heartbeat_interval
        self._running = set()
        self._beating = None
        self._stop = threading.Event()
        self.recycle_after = int(os.environ.get(protocol.RECYCLE_ENV, 0)) or None
        self.trials_ended = 0

    def create_trial(self, tuner_id):
        if self.recycle_after and self.trials_ended >= self.recycle_after:
            # Between trials, with the last one reported: nothing is lost.
            logger.info("Worker %s exits after %d trials to be restarted.", self.tuner_id, self.trials_ended)
            raise SystemExit(protocol.RECYCLE_EXIT_CODE)
        trial = super().create_trial(tuner_id)
        if trial.status == TrialStatus.IDLE:
            # Jitter keeps many idle workers from calling in step.
            time.sleep(self._idle_wait * random.uniform(0.8, 1.2))
            self._idle_wait = min(2 * self._idle_wait, self.max_idle_wait)
            return trial
        self._idle_wait = self.min_idle_wait
        if trial.status == TrialStatus.RUNNING and self.should_report:
            self._start_heartbeat(trial.trial_id)
        return trial

    def end_trial(self, trial):
        try:
            if self.should_report:
                proto = trial.to_proto()
                if trial.message:
                    text = str(trial.message)[-protocol.MAX_MESSAGE_CHARS :]
                    proto.hyperparameters.values.values[protocol.MESSAGE_KEY].string_value = text
                self.stub.EndTrial(protos.get_service().EndTrialRequest(trial=proto))
            self.trials_ended += 1
        finally:
            self._running.discard(trial.trial_id)

    def close(self):
        """Stops the heartbeats and closes the connection."""
        self._stop.set()
        self._channel.close()

    # -------------------------------------------------------------- heartbeats
    def _start_heartbeat(self, trial_id):
        if self.heartbeat_interval is None:
            return
        self._running.add(trial_id)
        if self._beating is None or not self._beating.is_alive():
            self._beating = threading.Thread(target=self._beat, name="keras-rlnas-heartbeat", daemon=True)
            self._beating.start()

    def _beat(self):
        request = protos.get_service().UpdateTrialRequest
        while not self._stop.wait(self.heartbeat_interval):
            for trial_id in list(self._running):
                try:
                    self._raw_stub.UpdateTrial(
                        request(trial_id=trial_id, metrics={protocol.HEARTBEAT_METRIC: 1.0}),
                        timeout=max(self.heartbeat_interval, 1.0),
                    )
                except (grpc.RpcError, ValueError):
                    # The chief may be restarting (its lease clocks restart with
                    # it), or close() closed the channel (ValueError).
                    pass


class _RetryingStub:
    """Wraps a gRPC stub: calls cut off by a chief going away are made again."""

    def __init__(self, stub, timeout):
        self._stub = stub
        self._timeout = timeout

    def __getattr__(self, name):
        method = getattr(self._stub, name)

        def call(request, **unused_kwargs):
            deadline = time.monotonic() + self._timeout
            wait = 0.2
            while True:
                left = deadline - time.monotonic()
                try:
                    return method(request, wait_for_ready=True, timeout=max(left, 0.1))
                except grpc.RpcError as error:
                    if error.code() not in RETRIED_CODES or left <= wait:
                        raise
                    logger.warning("Chief unreachable during %s (%s); retrying.", name, error.code().name)
                time.sleep(wait)
                wait = min(2 * wait, 2.0)

        return call
