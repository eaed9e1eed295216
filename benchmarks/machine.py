"""The machine a benchmark ran on, as its recorded tables name it."""

from __future__ import annotations

import platform
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def reference_s() -> float:
    """1,000,000 bare SimPy timeouts in one process: the unit the simulator's benchmarks are ratios of."""
    import simpy

    env = simpy.Environment()

    def loop():  # type: ignore[no-untyped-def]
        for _ in range(1_000_000):
            yield env.timeout(1)

    env.process(loop())
    started = time.perf_counter()
    env.run()
    return time.perf_counter() - started
