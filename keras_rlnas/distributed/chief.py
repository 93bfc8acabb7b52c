"""The chief's side: serve the oracle until the search is over, expiring lost trials.

Replaces Keras Tuner's `oracle_chief.start_server`, which checks for the end
of the search every 20 s, waits forever for a worker that died, and never
notices a trial whose worker is gone.
"""

import logging
import time
from concurrent import futures

import grpc
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief

from keras_rlnas.distributed import protocol

logger = logging.getLogger(__name__)


def serve(oracle, address=None, poll_interval=0.2, linger=None):
    """Serves `oracle` to the workers; returns once the search is over.

    The search is over when every trial has ended and no new one will be
    created. The chief then waits for the live workers to hear STOPPED (at
    most `linger` seconds) so none is left calling a chief that is gone.

    Args:
        oracle: an oracle with `keras_rlnas.distributed.leases.TrialLeases`
            (a `keras_rlnas.ControllerOracle`).
        address: `host:port` to listen on; by default Keras Tuner's
            `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`.
        poll_interval: seconds between checks for lost trials and the end.
        linger: seconds to wait for workers after the end; by default the
            oracle's `trial_timeout`, at most 30 s.

    Example:

    ```python
    # What `keras_rlnas.distributed.DistributedSearch.search` does on the chief:
    tuner.save()
    serve(tuner.oracle)
    ```
    """
    for method in ("search_finished", "expire_lost_trials", "live_workers"):
        if not hasattr(oracle, method):
            raise TypeError(f"`oracle` must be a keras_rlnas.ControllerOracle, got {type(oracle).__name__}.")
    address = address or protocol.chief_address()
    if linger is None:
        linger = min(oracle.trial_timeout or 30.0, 30.0)
    # One thread, as in Keras Tuner: the oracle's unsynchronized methods
    # (get_space, get_trial, update_space) then never run concurrently.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(oracle_chief.OracleServicer(oracle), server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as error:
        raise RuntimeError(f"The chief cannot listen on {address!r}: {error}") from error
    if not port:
        raise RuntimeError(f"The chief cannot listen on {address!r}.")
    server.start()
    logger.info("Chief serving the oracle on %s.", address)
    try:
        while not oracle.search_finished():
            time.sleep(poll_interval)
            oracle.expire_lost_trials()
        deadline = time.monotonic() + linger
        while oracle.live_workers() and time.monotonic() < deadline:
            time.sleep(poll_interval)
            oracle.expire_lost_trials()
        left = oracle.live_workers()
        if left:
            logger.warning("Search over; workers %s did not ask again within %g s.", left, linger)
    finally:
        server.stop(grace=2).wait()
