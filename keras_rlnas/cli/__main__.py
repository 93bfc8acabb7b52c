"""`python -m keras_rlnas.cli`: the `keras-rlnas` command."""

import sys

from keras_rlnas.cli.command import main

if __name__ == "__main__":
    sys.exit(main())
