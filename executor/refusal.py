"""Refusing a run before any process group: the reason, said once, by rank 0.

Every rank checks the same inputs and finds the same fault, so only rank 0 prints it. torchrun ends all
ranks as soon as one exits, so a rank other than 0 waits before exiting (rank 0, perhaps still importing,
would otherwise be ended before it could say why); torchrun ends the waiting ranks once rank 0 exits.
"""

from __future__ import annotations

import sys
import time

from topology.errors import LayerwiseError

REFUSED_EXIT_CODE = 2
RANK0_SAYS_IT_S = 20.0  # how long another rank waits for rank 0 to say why


def refuse(rank: int, error: LayerwiseError) -> int:
    """Say ``error`` (rank 0) or wait for rank 0 to (the others); the exit code of a refused run."""
    if rank == 0:
        print(f"executor: error: {error}", file=sys.stderr, flush=True)
    else:
        time.sleep(RANK0_SAYS_IT_S)
    return REFUSED_EXIT_CODE
