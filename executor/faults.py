"""Fault injection for tests: ``kill:RANK:STEP`` (the rank exits) or ``hang:RANK:STEP`` (it sleeps)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from topology.errors import LayerwiseError

FAULT_KINDS = ("kill", "hang")
KILL_EXIT_CODE = 17


@dataclass(frozen=True)
class Fault:
    kind: str
    rank: int
    step: int

    def maybe_trigger(self, rank: int, stage: int, step: int) -> None:
        """Called at the start of every step on every rank."""
        if rank != self.rank or step != self.step:
            return
        print(f"executor: fault injection: {self.kind} rank {rank} (stage {stage}) at step {step}",
              file=sys.stderr, flush=True)
        if self.kind == "kill":
            os._exit(KILL_EXIT_CODE)
        while True:
            time.sleep(3600)


def parse_fault(text: str | None) -> Fault | None:
    if not text:
        return None
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in FAULT_KINDS or not parts[1].isdigit() or not parts[2].isdigit():
        raise LayerwiseError("--fault", f"expected kill:RANK:STEP or hang:RANK:STEP, got {text!r}")
    return Fault(kind=parts[0], rank=int(parts[1]), step=int(parts[2]))
