"""Links as reservable resources, one per directed hop (``(u, v)`` of a cluster route).

A transfer waits until every hop it uses is free, then holds them: a point-to-point
message for its serialization time (data arrives ``latency`` later), a collective for its
whole duration (a ring keeps every port of the group busy until it ends). Requests are
served in the order they are made (FIFO, non-preemptive), so transfers sharing a link
contend and the later one starts when the earlier one releases it.
"""

from __future__ import annotations

Hop = tuple[str, str]


class Fabric:
    """Busy-until times per directed hop; the simulation's only link state."""

    def __init__(self) -> None:
        self._free_at_s: dict[Hop, float] = {}

    def reserve(self, hops: tuple[Hop, ...], now_s: float, hold_s: float) -> float:
        """Hold ``hops`` for ``hold_s`` from the earliest time all are free; returns that start."""
        if not hops:
            return now_s
        free_at = self._free_at_s
        try:
            start_s = max(map(free_at.__getitem__, hops))  # C-level loop: this is the hot path
        except KeyError:
            for hop in hops:
                free_at.setdefault(hop, 0.0)
            start_s = max(map(free_at.__getitem__, hops))
        if start_s < now_s:
            start_s = now_s
        free_at.update(dict.fromkeys(hops, start_s + hold_s))
        return start_s
