"""The nine one-line changes to the simulator that the fast tests once let through (issue 21):
apply each to a copy of the working tree, run the fast tests, and say which test catches it.

    python benchmarks/mutation/nine_changes.py            # table on stdout, exit 1 if one survives
    python benchmarks/mutation/nine_changes.py L2 attention   # only the changes whose name has a word given

Each change is a (file, text, replacement) edit that must match exactly once; a change whose text
is gone (the code moved) is reported as such, so this list is kept in step with the code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAST_TESTS = ["-m", "not slow", "--ignore=tests/executor", "--ignore=tests/calibrate"]

CHANGES: list[tuple[str, str, str, str]] = [
    ("GEMM compute time x1.01", "sim/costs/kernels.py",
     "compute_s = flops / (params.peak_flops_per_s * gemm_efficiency(shape.tokens, params))",
     "compute_s = 1.01 * flops / (params.peak_flops_per_s * gemm_efficiency(shape.tokens, params))"),
    ("GEMM compute time x1.2", "sim/costs/kernels.py",
     "compute_s = flops / (params.peak_flops_per_s * gemm_efficiency(shape.tokens, params))",
     "compute_s = 1.2 * flops / (params.peak_flops_per_s * gemm_efficiency(shape.tokens, params))"),
    ("attention compute time x1.01", "sim/costs/kernels.py",
     "    compute_s = flops / (params.peak_flops_per_s * params.attention_efficiency)",
     "    compute_s = 1.01 * flops / (params.peak_flops_per_s * params.attention_efficiency)"),
    ("DEFAULT_COMPUTE_EFFICIENCY 0.75 -> 0.6", "sim/params.py",
     "DEFAULT_COMPUTE_EFFICIENCY = 0.75", "DEFAULT_COMPUTE_EFFICIENCY = 0.6"),
    ("DEFAULT_ATTENTION_EFFICIENCY 0.5 -> 0.505", "sim/params.py",
     "DEFAULT_ATTENTION_EFFICIENCY = 0.5", "DEFAULT_ATTENTION_EFFICIENCY = 0.505"),
    ("L2 weight read time x1.01", "sim/costs/kernels.py",
     "weights_s = l2_bytes / params.l2_bw_bytes_per_s + (weights - l2_bytes) / read_bw",
     "weights_s = 1.01 * l2_bytes / params.l2_bw_bytes_per_s + (weights - l2_bytes) / read_bw"),
    ("cross-node all-reduce term x2", "sim/costs/comm.py",
     "inter_factor * shard / inter_bw", "2 * inter_factor * shard / inter_bw"),
    ("cross-node p2p latency x2", "sim/costs/comm.py",
     "latency_s = params.inter_node_latency_s if crosses", "latency_s = 2 * params.inter_node_latency_s if crosses"),
    ("mean TTFT x1.01", "sim/results.py",
     "ttft_s = log.ttft_sum_s / log.ttft_count", "ttft_s = 1.01 * log.ttft_sum_s / log.ttft_count"),
]


def _copy_tree(target: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("FAILED "):
            return line.split()[1].split("[")[0]
    return "(failed, see output)"


def check(name: str, path: str, text: str, replacement: str) -> tuple[str, str, float]:
    with tempfile.TemporaryDirectory(prefix="mutant-") as folder:
        copy = Path(folder)
        _copy_tree(copy)
        source = (copy / path).read_text(encoding="utf-8")
        if source.count(text) != 1:
            return name, f"NOT APPLIED: the text occurs {source.count(text)} times in {path}", 0.0
        (copy / path).write_text(source.replace(text, replacement), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *FAST_TESTS],
                              cwd=copy, env=env, capture_output=True, text=True, check=False)
        took = time.perf_counter() - started
        if done.returncode == 0:
            return name, "SURVIVED: every fast test passed", took
        return name, f"caught by {_first_failure(done.stdout)}", took


def main() -> int:
    wanted = sys.argv[1:]
    rows = [check(*change) for change in CHANGES if not wanted or any(word in change[0] for word in wanted)]
    print("| change | outcome | s |\n| --- | --- | --- |")
    for name, outcome, took in rows:
        print(f"| {name} | {outcome} | {took:.0f} |")
    return 1 if any(not outcome.startswith("caught") for _, outcome, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
