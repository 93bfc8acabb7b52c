"""`python -m keras_rlnas`: the `keras-rlnas` command."""

import sys

from keras_rlnas.cli import main

if __name__ == "__main__":
    sys.exit(main())
