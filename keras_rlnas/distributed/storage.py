"""Crash-safe writes: a killed process leaves the old file or the new one, never half of one."""

import json
import os


def write_atomic(path, data):
    """Writes `data` (str or bytes) to `path` through a temporary file and a rename.

    Args:
        path: a local file path.
        data: the new content.

    Example:

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "state.json")
    >>> write_atomic(path, "{}")
    >>> open(path).read()
    '{}'
    """
    mode = "wb" if isinstance(data, bytes) else "w"
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, mode) as f:
        f.write(data)
    os.replace(tmp, path)


def write_json_atomic(path, obj):
    """`write_atomic` of `json.dumps(obj)`."""
    write_atomic(path, json.dumps(obj))
