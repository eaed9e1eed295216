"""On a GPU machine (or on CPU with gloo): ``layerwise run`` refuses a bad output path before
launching, and SIGTERM / SIGINT end torchrun and every worker, leave no result, free the GPU.

Usage (repo root): ``python benchmarks/device/check_signals.py OUT_DIR [--experiment small-h100x1]``;
on CPU: ``--experiment tiny-cpu --plan pp2``. Writes ``OUT_DIR/check_signals.json`` and prints
one line per check; exits 1 if any check failed. Every wait is bounded (about 2 minutes in all
on one GPU: two runs started and stopped, each after ``--settle-s`` of running; under 9 minutes
whatever happens).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from executor.process_tree import ProcessId, descendants, is_alive  # noqa: E402

LONG_RUN = ["--set", "workload.measured_iters=100000000", "--set", "workload.warmup_iters=1"]


def layerwise(*args: str) -> list[str]:
    return [sys.executable, "-m", "layerwise", *args]


def gpu_pids() -> set[int] | None:
    """PIDs holding a GPU context (nvidia-smi), or None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
                          capture_output=True, text=True, timeout=30, check=False)
    return {int(word) for word in done.stdout.split() if word.isdigit()}


def check_bad_output(experiment: str, plan: list[str]) -> dict[str, Any]:
    started = time.monotonic()
    done = subprocess.run(layerwise("run", experiment, *plan, "--json", "/proc/nope/r.json"), capture_output=True,
                          text=True, timeout=60, check=False)
    err = done.stderr.strip().splitlines()
    ok = done.returncode == 2 and len(err) == 1 and "--json: cannot write '/proc/nope/r.json'" in err[0]
    return {"check": "bad --json refused before launch", "ok": ok, "returncode": done.returncode,
            "stderr": err, "seconds": round(time.monotonic() - started, 2)}


def check_signal(experiment: str, plan: list[str], signum: int, out: Path, settle_s: float,
                 nproc: int) -> dict[str, Any]:
    result = out / f"run-{signal.Signals(signum).name}" / "r.json"
    run = subprocess.Popen(layerwise("run", experiment, *plan, "--json", str(result), *LONG_RUN),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tree: list[ProcessId] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        tree = descendants(run.pid)
        if len(tree) >= 1 + nproc:
            break
        time.sleep(0.2)
    time.sleep(settle_s)  # into the run: CUDA contexts made, NCCL up, steps going
    tree = descendants(run.pid) or tree
    running_before = run.poll() is None
    on_gpu_before = gpu_pids()
    os.kill(run.pid, signum)
    signalled = time.monotonic()
    try:
        _, err = run.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        run.kill()
        _, err = run.communicate()
    exit_s = time.monotonic() - signalled
    survivors = [p.pid for p in tree if is_alive(p)]
    for pid in survivors:  # leave the machine clean whatever the outcome
        os.kill(pid, signal.SIGKILL)
    time.sleep(1.0)
    on_gpu_after = gpu_pids()
    tree_pids = {p.pid for p in tree}
    still_on_gpu = sorted(tree_pids & on_gpu_after) if on_gpu_after is not None else None
    leftovers = sorted(str(p) for p in result.parent.rglob("*")) if result.parent.exists() else []
    last = err.strip().splitlines()[-1] if err.strip() else ""
    ok = (running_before and run.returncode == 128 + signum and not survivors and not leftovers
          and not still_on_gpu and last.startswith(f"layerwise run: interrupted by {signal.Signals(signum).name}"))
    return {"check": f"{signal.Signals(signum).name} ends every process", "ok": ok, "returncode": run.returncode,
            "running_when_signalled": running_before, "processes": len(tree) + 1, "exit_after_s": round(exit_s, 2),
            "survivors": survivors, "files_left": leftovers, "tree_on_gpu_before": sorted(tree_pids & on_gpu_before)
            if on_gpu_before is not None else None, "tree_on_gpu_after": still_on_gpu, "last_line": last}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for check_signals.json")
    parser.add_argument("--experiment", default="small-h100x1")
    parser.add_argument("--plan", default=None)
    parser.add_argument("--nproc", type=int, default=None, help="worker processes the plan starts (default: "
                                                                 "1, or 2 for tiny-cpu)")
    parser.add_argument("--settle-s", type=float, default=None, help="run this long before the signal "
                                                                      "(default 20 on GPU, 3 on CPU)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = ["--plan", args.plan] if args.plan else []
    nproc = args.nproc if args.nproc is not None else (2 if args.experiment == "tiny-cpu" else 1)
    settle_s = args.settle_s if args.settle_s is not None else (20.0 if gpu_pids() is not None else 3.0)
    checks = [check_bad_output(args.experiment, plan)]
    for signum in (signal.SIGTERM, signal.SIGINT):
        checks.append(check_signal(args.experiment, plan, signum, out, settle_s, nproc))
    for check in checks:
        print(f"{'ok  ' if check['ok'] else 'FAIL'} {check['check']}: "
              + ", ".join(f"{k}={v}" for k, v in check.items() if k not in ("check", "ok")), flush=True)
    (out / "check_signals.json").write_text(json.dumps(checks, indent=2) + "\n")
    return 0 if all(check["ok"] for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
