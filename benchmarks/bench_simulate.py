"""Benchmark: wall time of the default ``layerwise simulate`` and simulated events per second.

Runs the main job (the seed experiment: 2 cluster variants x 2 models x 3 plans, 100 warmup +
1000 measured decode iterations each, every event simulated) with all local cores and with one
process, and prints a small table. Usage: ``python benchmarks/bench_simulate.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from sim.main_job import main_rows
from topology.format import render_table


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def measure(jobs: int) -> tuple[float, int]:
    started = time.perf_counter()
    rows, _ = main_rows(jobs)
    wall_s = time.perf_counter() - started
    events = sum(int(r.result.metrics.extra["simulated_events"]) for r in rows if r.result is not None)
    return wall_s, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting; the best is reported")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    table = []
    for jobs in sorted({cores, 1}, reverse=True):
        runs = [measure(jobs) for _ in range(args.repeat)]
        wall_s, events = min(runs)
        table.append([str(jobs), f"{wall_s:.2f} s", f"{events:,}", f"{events / wall_s:,.0f}"])
    print(f"machine: {cpu_model()}, {cores} cores, Python {platform.python_version()}")
    print(render_table(["processes", "wall (best)", "simulated events", "events/s"], table))


if __name__ == "__main__":
    main()
