"""`python -m keras_rlnas.distributed launch|chief|worker [options] -- command...`"""

import sys

from keras_rlnas.distributed.launcher import main

sys.exit(main())
