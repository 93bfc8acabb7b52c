"""The `keras-rlnas` command: search, report, retrain and export from the shell (`docs/cli.md`).

Public API:
    - `main(argv)`: runs the command; returns the exit status.
    - `Project(directory)`: a project directory made by `keras-rlnas search`.
    - `recipes.get(name)`: what the command does for one search space.

Importing this package loads no TensorFlow, so usage errors and `--help` answer at once.
"""

from keras_rlnas.cli import recipes
from keras_rlnas.cli.command import build_parser, main
from keras_rlnas.cli.errors import ProjectError, UsageError
from keras_rlnas.cli.project import Project

__all__ = ["Project", "ProjectError", "UsageError", "build_parser", "main", "recipes"]
