"""The links of a cluster: one FIFO resource per directed hop (``(u, v)`` of a cluster route).

A transfer holds every hop of its route at once: a point-to-point message for its serialization
time (the data arrives ``latency`` after that), a collective for its whole duration (a ring keeps
every port of its group busy until it ends). Transfers are served in the order they ask, each
starting when all of its hops are free (FIFO, non-preemptive), so two messages on one link
arrive at ``latency + serialization`` and ``latency + 2 x serialization``.

The resource is kept as a busy-until time per hop rather than as ``simpy.Resource`` objects: a
transfer that needs several hops books them all in one step, with no partial holds and no
deadlock, and costs one event instead of one per hop. :meth:`Fabric.hold` is the whole interface.
"""

from __future__ import annotations

from topology.cluster import Hop


class Fabric:
    """Busy-until times per directed hop; the simulation's only link state."""

    def __init__(self) -> None:
        self._free_at_s: dict[Hop, float] = {}

    def hold(self, hops: tuple[Hop, ...], now_s: float, duration_s: float) -> float:
        """Book ``hops`` for ``duration_s`` from the earliest time all are free (and not before
        ``now_s``); returns that start time."""
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
        free_at.update(dict.fromkeys(hops, start_s + duration_s))
        return start_s

    def busy_after(self, now_s: float) -> tuple[tuple[Hop, float], ...]:
        """Every hop still booked after ``now_s``, with how long it stays booked (a snapshot)."""
        return tuple(sorted((hop, free - now_s) for hop, free in self._free_at_s.items() if free > now_s))

    def shift(self, delta_s: float) -> None:
        """Move every booking ``delta_s`` later (the steady state skipping whole periods)."""
        for hop in self._free_at_s:
            self._free_at_s[hop] += delta_s
