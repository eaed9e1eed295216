"""``torchrun --nproc-per-node N -m executor EXP.yaml ...``: one process per device of the plan."""

import sys

from executor.worker import main

sys.exit(main())
