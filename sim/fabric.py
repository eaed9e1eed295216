"""Links as reservable resources, one per directed hop (``(u, v)`` of a cluster route).

A transfer waits until every hop it uses is free, then holds them: a point-to-point
message for its serialization time (data arrives ``latency`` later), a collective for its
whole duration (a ring keeps every port of the group busy until it ends). Requests are
served in the order they are made (FIFO, non-preemptive), so transfers sharing a link
contend and the later one starts when the earlier one releases it.
"""

from __future__ import annotations

from collections.abc import Iterable

Hop = tuple[str, str]


class Fabric:
    """Busy-until times per directed hop; the simulation's only link state."""

    def __init__(self) -> None:
        self._free_at_s: dict[Hop, float] = {}

    def reserve(self, hops: Iterable[Hop], now_s: float, hold_s: float) -> float:
        """Hold ``hops`` for ``hold_s`` from the earliest time all are free; returns that start."""
        hop_list = tuple(hops)
        start_s = max([now_s, *(self._free_at_s.get(h, 0.0) for h in hop_list)])
        for hop in hop_list:
            self._free_at_s[hop] = start_s + hold_s
        return start_s
