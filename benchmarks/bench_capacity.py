"""Benchmark: ``layerwise capacity`` as a whole command on Llama-3-70B and up to 16 H100s.

    python benchmarks/bench_capacity.py [--jobs N] [--out DIR]

One run (the search is minutes long; the issue's target is <= 10 min on the 2-core machine) of

    layerwise capacity llama3-70b-16xh100-serve --slo ttft_p99_ms=2000 --slo tpot_p99_ms=50 --disaggregated \
        --max-num-seqs 128,256 --chunked on --uneven 1

(500 ShareGPT-like requests, Poisson arrivals; every replica plan of 1..16 GPUs (the uniform TP x PP
family and the plan search's best uneven plan per GPU count), 1, 2, 4, ... replicas, disaggregated P
prefill + D decode replicas, max_num_seqs 128/256, max_num_batched_tokens 2048/8192, chunked prefill
on), timed as a whole process, with the machine,
its load average before and after (the machine is shared), the counts, the best deployment and the
crossover line from ``--json``. ``--out DIR`` keeps the table, the JSON and the plot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py (the script's folder is on sys.path)

COMMAND = ["llama3-70b-16xh100-serve", "--slo", "ttft_p99_ms=2000", "--slo", "tpot_p99_ms=50", "--disaggregated",
           "--max-num-seqs", "128,256", "--chunked", "on", "--uneven", "1"]
TARGET_S = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=None, help="local processes (default: all cores)")
    parser.add_argument("--out", type=Path, default=None, help="keep the table, JSON and plot here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        jobs = ["--jobs", str(args.jobs)] if args.jobs else []
        command = [sys.executable, "-m", "layerwise", "capacity", *COMMAND, *jobs, "--json", str(out / "capacity.json"),
                   "--plot", str(out / "capacity.png")]
        load_before = os.getloadavg()
        started = time.perf_counter()
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        wall_s = time.perf_counter() - started
        load_after = os.getloadavg()
        (out / "capacity.txt").write_text(done.stdout)
        result = json.loads((out / "capacity.json").read_text())
    counts = result["counts"]
    best = result["ranked"][0] if result["ranked"] else None
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
          f"(1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"command: layerwise capacity {' '.join(COMMAND)}{' ' + ' '.join(jobs) if jobs else ''}")
    print(f"whole search: {wall_s:.1f} s ({wall_s / 60:.1f} min; target <= {TARGET_S / 60:.0f} min: "
          f"{'met' if wall_s <= TARGET_S else 'MISSED'}); the search's own clock {result['wall_s']:.1f} s")
    print(f"space: {counts['deployments']:,} deployments, {counts['infeasible']:,} infeasible, "
          f"{counts['pruned_by_bound']:,} pruned by bound, {counts['below_threshold']:,} below the top "
          f"{result['top']}, {counts['resolved']:,} resolved; {counts['probes_simulated']:,} simulations "
          f"({counts['probes_stopped_early']:,} stopped early, {counts['iterations_simulated']:,} iterations), "
          f"{counts['probes_stood_in']:,} reused")
    if best is not None:
        print(f"best: {best['key']}: {best['capacity_per_s']:.4g} requests/s ({best['capacity_per_s_per_gpu']:.4g} "
              f"per GPU)")
    crossover = result.get("crossover")
    if crossover:
        print(crossover["line"])


if __name__ == "__main__":
    main()
