"""Benchmark: the simulator's speed and scale, each case as a ratio to a SimPy reference loop.

Every case runs in a fresh process (its wall time and peak memory are its own); the reference is
1,000,000 bare SimPy timeouts timed in the same run, so the ratios hold across machines.

    python benchmarks/bench_simulate.py                # every case but the 10,000-GPU TP8 x PP1250 one
    python benchmarks/bench_simulate.py --huge         # that one too (about a quarter of an hour here)
    python benchmarks/bench_simulate.py --baseline d5c1c20   # also time the main job at an older commit

Cases (targets from the simulator-scale and architecture issues):
  main-job           the default ``layerwise`` (4 plan searches, every finalist simulated), all cores   <= 1x
  layerwise-cmd      the same as a whole command, ``layerwise > /dev/null``
  layerwise-10k      10,000 GPUs (1,250 nodes of 8): one one-layer stage per GPU (TP1 x PP10000), 1 microbatch,
                     100 + 1,000 iterations                                                             <= 10x
  tp8-pp1250         10,000 GPUs: TP8 x PP1250 with 1,250 microbatches, 100 + 1,000 iterations (--huge)  <= 10x
  llama70b-tp8-pp8   llama3-70b on 64 H100, TP8 x PP8 with 8 microbatches, 100 + 1,000 iterations       <= 1x
  grow-10k           the seed baseline with a growing context, 10,000 iterations        <= 5 s and 100 MB
  fixed-1e9          the seed baseline, fixed context, 10^9 measured iterations
  baseline-main-job  (--baseline COMMIT) the default ``layerwise`` at that commit, in a git worktree
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model, reference_s  # benchmarks/machine.py (the script's folder is on sys.path)

from topology.results import Metrics

REPO = Path(__file__).resolve().parents[1]
DEEP_MODEL = {"name": "deep", "hidden_size": 4096, "num_heads": 32, "num_kv_heads": 8, "head_dim": 128,
              "mlp_hidden_size": 14336, "gated_mlp": True, "vocab_size": 1000, "dtype_bytes": 2}
CLUSTER_10K = {"name": "h100x10000", "nodes": 1250, "gpus_per_node": 8, "gpu": "h100-sxm",
               "intra_node_link": "nvlink4", "inter_node_link": "ib-ndr-400"}
TARGETS = {"main-job": "<= 1x", "layerwise-10k": "<= 10x", "tp8-pp1250": "<= 10x", "llama70b-tp8-pp8": "<= 1x",
           "grow-10k": "<= 5 s, <= 100 MB", "baseline-main-job": "new main job <= 1.5x this"}


def _deep_case(layers: int, plan: dict[str, object], batch: int) -> dict[str, object]:
    from sim.resolve import resolve_given
    from sim.simulate import simulate
    from topology.experiment import experiment_from_dict

    experiment = experiment_from_dict({
        "name": "scale", "model": {**DEEP_MODEL, "num_layers": layers}, "cluster": CLUSTER_10K,
        "workload": {"phase": "decode", "batch_size": batch, "context_len": 4096}, "plans": {"p": plan}})
    return _figures(simulate(resolve_given(experiment, "p", None)).metrics)


def _figures(metrics: Metrics) -> dict[str, object]:
    details = metrics.simulation
    assert details is not None
    return {"tokens_per_s": metrics.tokens_per_s, "simulated_iterations": details.simulated_iterations,
            "skipped_iterations": details.skipped_iterations, "events": details.simulated_events}


def run_case(name: str) -> dict[str, object]:
    """One case in this process; its figures (wall and peak memory are added by the caller)."""
    from sim.resolve import resolve_given
    from sim.simulate import simulate
    from topology.experiment import load_experiment

    if name == "reference":
        return {"wall_s": reference_s()}
    if name == "main-job":
        from layerwise.question.main import run_main_job
        from sim.inputs import ProfileChoice

        _, results = run_main_job(ProfileChoice(), (), os.cpu_count() or 1, twin_only=False)
        return {"searches": len(results)}
    if name == "layerwise-10k":
        return _deep_case(10_000, {"partitioner": "tp-pp", "tp": 1, "pp": 10_000, "microbatches": 1}, 8)
    if name == "tp8-pp1250":
        return _deep_case(1_250, {"partitioner": "tp-pp", "tp": 8, "pp": 1_250, "microbatches": 1_250}, 1_250 * 8)
    if name == "llama70b-tp8-pp8":
        return _figures(simulate(resolve_given(load_experiment("llama3-70b-64xh100"), "tp8-pp8", None)).metrics)
    overrides = {"grow-10k": ["workload.context_growth=grow", "workload.context_len=2048", "workload.warmup_iters=0",
                              "workload.measured_iters=10000"],
                 "fixed-1e9": ["workload.measured_iters=1000000000"]}[name]
    return _figures(simulate(resolve_given(load_experiment("seed-16xh100", overrides), "baseline", None)).metrics)


def _in_subprocess(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    wall_s = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "{}"
    figures = json.loads(last) if last.startswith("{") else {}
    return {"process_wall_s": wall_s, **figures}


def measure(name: str) -> dict[str, object]:
    return _in_subprocess([sys.executable, str(Path(__file__).resolve()), "--case", name], REPO)


def measure_baseline(commit: str) -> dict[str, object]:
    """The default ``layerwise`` at ``commit``, from a temporary git worktree."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=REPO, check=True,
                       capture_output=True)
        try:
            env = {**os.environ, "PYTHONPATH": str(tree)}
            figures = _in_subprocess([sys.executable, "-m", "layerwise"], tree, env)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False,
                           capture_output=True)
    return {"wall_s": figures["process_wall_s"], "commit": commit}




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--huge", action="store_true", help="also the 10,000-GPU TP8 x PP1250 case")
    parser.add_argument("--baseline", metavar="COMMIT", help="also time the default layerwise at COMMIT")
    args = parser.parse_args()
    if args.case:
        started = time.perf_counter()
        figures = run_case(args.case)
        figures.setdefault("wall_s", time.perf_counter() - started)
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return
    reference = measure("reference")["wall_s"]
    names = ["main-job", "layerwise-10k", "llama70b-tp8-pp8", "grow-10k", "fixed-1e9"]
    names += ["tp8-pp1250"] if args.huge else []
    rows = []
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        figures = measure(name)
        rows.append((name, figures))
    command = _in_subprocess([sys.executable, "-m", "layerwise"], REPO)
    rows.append(("layerwise-cmd", {"wall_s": command["process_wall_s"]}))
    if args.baseline:
        rows.append(("baseline-main-job", measure_baseline(args.baseline)))
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"reference (10^6 SimPy timeouts): {reference:.2f} s")
    header = f"{'case':<20} {'wall s':>8} {'x ref':>7} {'peak MB':>8} {'iterations simulated':>21}  target"
    print(header)
    for name, figures in rows:
        wall = float(figures["wall_s"])  # type: ignore[arg-type]
        simulated = figures.get("simulated_iterations", "-")
        peak = figures.get("peak_rss_mb")
        peak_text = "-" if peak is None else f"{float(peak):.0f}"  # type: ignore[arg-type]
        print(f"{name:<20} {wall:>8.2f} {wall / float(reference):>7.2f} "  # type: ignore[arg-type]
              f"{peak_text:>8} {simulated!s:>21}  {TARGETS.get(name, '')}")


if __name__ == "__main__":
    main()
