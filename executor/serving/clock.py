"""The serving run's clock: seconds since the run's origin on the host's monotonic clock.

Stamps are whole ticks of 2^-20 s (about 0.95 us), so they are dyadic: sums and differences of
stamps are exact in float64, and a replay that adds the recorded durations back lands on the same
instants. Rank 0's stamps also strictly increase, so two observations are never at one instant
(which would leave their order to chance). Every rank of one host reads the same clock
(``CLOCK_MONOTONIC``); the origin is rank 0's, sent to the others at the start.
"""

from __future__ import annotations

import time

TICKS_PER_S = 1 << 20
NS_PER_S = 1_000_000_000


def ticks_to_s(ticks: int) -> float:
    """Exact: a power-of-two divisor."""
    return ticks / TICKS_PER_S


class RunClock:
    """Ticks and seconds since ``origin_ns`` (a ``time.monotonic_ns()`` reading)."""

    def __init__(self, origin_ns: int | None = None) -> None:
        self.origin_ns = 0
        self._last_ticks = -1
        self.restart(origin_ns)

    def restart(self, origin_ns: int | None = None) -> int:
        """Count from ``origin_ns`` (default: now); the origin."""
        self.origin_ns = time.monotonic_ns() if origin_ns is None else origin_ns
        self._last_ticks = -1
        return self.origin_ns

    def ticks(self) -> int:
        """Now, in whole ticks (not forced to increase: a middle stage's own reading)."""
        return (time.monotonic_ns() - self.origin_ns) * TICKS_PER_S // NS_PER_S

    def stamp(self) -> float:
        """Now, in seconds, strictly later than the previous stamp."""
        ticks = max(self.ticks(), self._last_ticks + 1)
        self._last_ticks = ticks
        return ticks_to_s(ticks)

    def elapsed_s(self) -> float:
        """Now, in seconds (unrounded, for budgets and sleeps)."""
        return (time.monotonic_ns() - self.origin_ns) / NS_PER_S

    def sleep_until(self, time_s: float, longest_s: float) -> None:
        """Sleep until ``time_s`` on this clock, at most ``longest_s``."""
        wait_s = min(time_s - self.elapsed_s(), longest_s)
        if wait_s > 0:
            time.sleep(wait_s)
