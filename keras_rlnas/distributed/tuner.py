"""`DistributedSearch`: what a Keras Tuner tuner needs to search dependably as chief or worker."""

import logging
import os

from keras_rlnas.distributed import protocol, storage

logger = logging.getLogger(__name__)


class DistributedSearch:
    """Mixin for a `keras_tuner` tuner whose oracle is a `keras_rlnas.ControllerOracle`.

    Put it before the Keras Tuner class (`RLSearch` has it). In Keras Tuner's
    chief/worker mode (`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`,
    `KERASTUNER_ORACLE_PORT` set) it:

    - on the chief, serves the oracle with `keras_rlnas.distributed.serve`
      (lost trials expire, the chief stops when the search is over);
    - on a worker, talks to the chief through
      `keras_rlnas.distributed.WorkerClient` (back-off, heartbeats, error
      text, retries while the chief restarts);
    - never lets a worker delete the shared project (`overwrite=True` is
      the chief's business), and resumes a chief that the launcher restarted;
    - writes the tuner's own file atomically.

    Outside that mode it changes nothing.

    Example:

    ```python
    class MyTuner(keras_rlnas.distributed.DistributedSearch, keras_tuner.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            ...

    tuner = MyTuner(oracle=keras_rlnas.ControllerOracle("val_accuracy", max_trials=50), ...)
    ```
    """

    def __init__(self, *args, **kwargs):
        if kwargs.get("overwrite") and (protocol.is_worker() or os.environ.get(protocol.RESUME_ENV)):
            # A worker would delete the chief's records; a restarted chief its own.
            logger.info("Distributed search: overwrite=True ignored by %s.", os.environ.get(protocol.TUNER_ID_ENV))
            kwargs["overwrite"] = False
        super().__init__(*args, **kwargs)
        if protocol.is_worker():
            from keras_rlnas.distributed.client import WorkerClient

            stock = self.oracle
            self.oracle = WorkerClient(stock._oracle)
            # Set by keras_tuner.Tuner for multi-worker distribution strategies.
            self.oracle.multi_worker = stock.multi_worker
            self.oracle.should_report = stock.should_report

    def search(self, *fit_args, **fit_kwargs):
        if not protocol.is_chief():
            return super().search(*fit_args, **fit_kwargs)
        from keras_rlnas.distributed.chief import serve

        if "verbose" in fit_kwargs:
            self.oracle.verbose = fit_kwargs["verbose"]
        self.save()
        serve(self.oracle)
        self.on_search_end()
        message = getattr(self.oracle, "abort_message", None)
        if message:
            # Workers only hear STOPPED; the reason is the chief's to raise.
            raise RuntimeError(f"The search stopped early: {message}")

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        storage.write_json_atomic(self._get_tuner_fname(), self.get_state())
