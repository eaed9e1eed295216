"""Routers: which replica an arriving request goes to.

* ``round_robin``: replicas in turn, 0, 1, ..., R−1, 0, ...;
* ``least_outstanding``: the replica with the fewest requests in the system (waiting + running);
* ``least_kv``: the replica with the fewest KV blocks in use.

Ties go to the fewest requests in the system, then to the lowest index, so routing is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

from serving.fields import one_of
from serving.scheduler import Scheduler

ROUTERS = ("round_robin", "least_outstanding", "least_kv")


class Router:
    """Picks a replica for each arrival; ``round_robin`` keeps its turn here (one router per run)."""

    def __init__(self, kind: str) -> None:
        self.kind = one_of("router", kind, ROUTERS)
        self._turn = 0

    def pick(self, replicas: Sequence[Scheduler]) -> int:
        if self.kind == "round_robin":
            chosen = self._turn % len(replicas)
            self._turn += 1
            return chosen
        if self.kind == "least_outstanding":
            return min(range(len(replicas)), key=lambda index: (replicas[index].num_in_system, index))
        return min(range(len(replicas)),
                   key=lambda index: (replicas[index].kv_blocks_used, replicas[index].num_in_system, index))
