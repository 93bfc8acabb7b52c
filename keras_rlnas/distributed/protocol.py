"""What the chief and its workers agree on beyond Keras Tuner's gRPC messages.

Keras Tuner's `Trial` message has no field for an error text and no call says
"still alive". Both ride on fields the messages do have, under names that no
hyperparameter or metric of a user's model can take:

- a heartbeat is an `UpdateTrial` call whose only metric is `HEARTBEAT_METRIC`;
- a failed trial's error text travels inside `EndTrial` as the string value
  `MESSAGE_KEY` of the trial's hyperparameters, which the chief pops before it
  records the trial.
"""

import os

HEARTBEAT_METRIC = "__keras_rlnas/heartbeat__"
MESSAGE_KEY = "__keras_rlnas/message__"
# Traceback tails are what matter; whole logs would bloat every trial.json.
MAX_MESSAGE_CHARS = 16_000

# Set by the launcher when it restarts a crashed chief: the search resumes
# (`overwrite=False`) whatever the script says.
RESUME_ENV = "KERAS_RLNAS_RESUME"
# Seconds a worker keeps retrying an unreachable chief before it gives up.
CHIEF_TIMEOUT_ENV = "KERAS_RLNAS_CHIEF_TIMEOUT"
# Trials after which a worker exits with RECYCLE_EXIT_CODE for the launcher
# to start it afresh: TensorFlow keeps some memory of every trained model.
RECYCLE_ENV = "KERAS_RLNAS_RECYCLE_AFTER"
RECYCLE_EXIT_CODE = 75

TUNER_ID_ENV = "KERASTUNER_TUNER_ID"
ORACLE_IP_ENV = "KERASTUNER_ORACLE_IP"
ORACLE_PORT_ENV = "KERASTUNER_ORACLE_PORT"


def is_distributed():
    """Whether this process takes part in a chief/worker search."""
    return ORACLE_IP_ENV in os.environ


def is_chief():
    """Whether this process serves the oracle (Keras Tuner's own test)."""
    return is_distributed() and "chief" in os.environ.get(TUNER_ID_ENV, "")


def is_worker():
    """Whether this process trains children for a chief elsewhere."""
    return is_distributed() and not is_chief()


def chief_address():
    """`host:port` of the chief, from Keras Tuner's environment variables."""
    return f"{os.environ[ORACLE_IP_ENV]}:{os.environ[ORACLE_PORT_ENV]}"
