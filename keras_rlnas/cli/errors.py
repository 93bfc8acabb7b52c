"""The two kinds of mistakes the `keras-rlnas` command reports in one line."""


class UsageError(Exception):
    """Bad command-line arguments (exit status 2)."""


class ProjectError(Exception):
    """A project directory, its files or a command's arguments are not usable; the message says why."""
