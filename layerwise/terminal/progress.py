"""A long run's progress on stderr: nothing for the first seconds, then a line at most every second
with how far it is and an estimate of the time left (edges only: the caller decides to show it)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from layerwise.terminal import interrupts


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressLine:
    """``update(done)`` of ``total`` units; prints ``label: 45% (450/1,000 units), 12 s left``."""

    def __init__(self, label: str, total: int, unit: str, quiet_s: float = 2.0, every_s: float = 1.0,
                 stream: TextIO | None = None) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.quiet_s, self.every_s = quiet_s, every_s
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.perf_counter()
        self.last_shown = -1.0

    def update(self, done: int, total: int | None = None) -> None:
        """Called at every unit done; acts on a pending interrupt (:func:`interrupts.check`) first."""
        interrupts.check()
        total = self.total if total is None else total
        now = time.perf_counter()
        elapsed = now - self.started
        if elapsed < self.quiet_s or now - self.last_shown < self.every_s or not 0 < done <= total:
            return
        self.last_shown = now
        left = elapsed / done * (total - done)
        print(f"[{self.label}] {done / total:.0%} ({done:,}/{total:,} {self.unit}), {format_duration(elapsed)} "
              f"elapsed, about {format_duration(left)} left (Ctrl-C stops)", file=self.stream, flush=True)
