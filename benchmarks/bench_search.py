"""Benchmark: ``layerwise search`` as a whole command (start-up, twin DP, event re-rank, table).

    python benchmarks/bench_search.py [--repeat 3]

Times, as whole processes (median of ``--repeat``), with datasheet parameters and no plot:
  seed-16xh100          the seed's 16 H100 in two nodes (target <= 10 s)
  seed-16xh100-nvl16    the same in one 16-GPU NVLink domain
  llama3-70b-64xh100    llama3-70b on 64 H100 (eight nodes of 8; target <= 60 s)
and prints each search's space size, DP states expanded and best plan (from ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py (the script's folder is on sys.path)

CASES = {
    "seed-16xh100": (["seed-16xh100"], "<= 10 s"),
    "seed-16xh100-nvl16": (["seed-16xh100", "--set", "cluster=seed-16xh100-nvl16"], "<= 10 s"),
    "llama3-70b-64xh100": (["llama3-70b-64xh100"], "<= 60 s"),
}


def run_once(args: list[str], out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "layerwise", "search", *args, "--no-plot", "--json", str(out)],
                   check=True, capture_output=True, text=True)
    return time.perf_counter() - started




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'experiment':<20} {'median s':>9} {'min s':>7} {'max s':>7}  {'target':<8} {'space':>10} "
          f"{'DP states':>9}  best plan")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "search.json"
        for name, (command, target) in CASES.items():
            walls = [run_once(command, out) for _ in range(args.repeat)]
            result = json.loads(out.read_text())
            best = result["ranked"][0]
            print(f"{name:<20} {statistics.median(walls):>9.2f} {min(walls):>7.2f} {max(walls):>7.2f}  {target:<8} "
                  f"{result['space_size']:>10.2e} {result['states_visited']:>9,}  {best['describe']} "
                  f"({best['tokens_per_s']:,.0f} tokens/s)")


if __name__ == "__main__":
    main()
