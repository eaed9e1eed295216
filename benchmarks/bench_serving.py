"""Benchmark: simulated serving's speed, each case as a ratio to a SimPy reference loop (issue 23).

Every case runs in a fresh process (its wall time and peak memory are its own); the reference is
1,000,000 bare SimPy timeouts timed in the same run, so the ratios hold across machines.

    python benchmarks/bench_serving.py                          # every case at its full size
    python benchmarks/bench_serving.py --fleet-requests 100000  # a smaller fleet case
    python benchmarks/bench_serving.py --with-reference         # also the one-replica case on the reference driver

The experiment is the shipped llama3-8b-h100-serve (Llama-3-8B on one H100, plan tp1, vLLM's default
scheduler) with ShareGPT-like lengths: prompt lognormal (median 250 tokens, sigma 1.0), output
lognormal (median 200 tokens, sigma 0.8).

Cases (targets from issue 23):
  capacity      the probe: PROBE_REQUESTS requests arriving at 1,000/s (far past saturation) on one
                replica; its capacity is the finished requests over the span from the first arrival to
                the last finish (the drain at the end included, so a slight underestimate)
  one-replica   10,000 Poisson requests at LOAD (0.8) of that capacity through one replica:
                ``simulate_serving`` (fast driver, every request's timestamps kept) and the metrics  <= 1x
  one-replica-reference  (--with-reference) the same on the reference driver (``driver="reference"``)
  fleet         1,000,000 Poisson requests over 64 replicas at LOAD of 64 x the capacity, round robin:
                ``summarize_serving`` (no token time kept) and ``summary_metrics``       <= 100x (goal 30x)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from machine import cpu_model, reference_s  # benchmarks/machine.py (the script's folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "llama3-8b-h100-serve"
PLAN = "tp1"
PROMPT = {"kind": "lognormal", "median_tokens": 250, "sigma": 1.0}
OUTPUT = {"kind": "lognormal", "median_tokens": 200, "sigma": 0.8}
PROBE_RATE_PER_S = 1000.0
TARGETS = {"one-replica": "<= 1x", "fleet": "<= 100x (goal 30x)"}


def _setup(requests: int, rate_per_s: float, replicas: int) -> Any:
    from serving.setup import serving_setup_from_dict
    from topology.experiment import read_experiment_raw

    raw, _, _ = read_experiment_raw(EXPERIMENT, [])
    raw["workload"].update({"num_requests": requests, "arrivals": {"kind": "poisson", "rate_per_s": rate_per_s},
                            "prompt_tokens": PROMPT, "output_tokens": OUTPUT})
    raw["serving"] = {"replicas": replicas, "router": "round_robin"}
    return serving_setup_from_dict(raw)


def _metrics_figures(metrics: Any) -> dict[str, object]:
    return {"finished": metrics.finished, "rejected": metrics.rejected, "preemptions": metrics.preemptions,
            "requests_per_s": metrics.throughput.requests_per_s, "ttft_p99_s": metrics.ttft.p99_s,
            "tpot_p99_s": metrics.tpot.p99_s, "stable": metrics.stability.stable}


def simulate_case(requests: int, rate_per_s: float, driver: str) -> dict[str, object]:
    """``simulate_serving`` of one replica, keeping every request's timestamps."""
    from sim.inputs import resolve_basis
    from sim.serving.run import simulate_serving
    from topology.experiment import build_plan

    setup = _setup(requests, rate_per_s, 1)
    basis = resolve_basis(setup.experiment)
    plan = build_plan(setup.experiment, PLAN)
    detail = "records" if driver == "fast" else "trace"
    prediction = simulate_serving(setup, basis, PLAN, plan, detail=detail, driver=driver)
    iterations = len(prediction.run.iterations) or len(prediction.run.iteration_log or ())
    return {"iterations": iterations, **_metrics_figures(prediction.metrics)}


def fleet_case(requests: int, rate_per_s: float, replicas: int) -> dict[str, object]:
    """Many replicas, kept as a summary (``serving.fast.summary``)."""
    from serving.fast.run import summarize_serving
    from serving.fast.summary import summary_metrics
    from serving.sources import request_source
    from sim.inputs import resolve_basis
    from sim.serving.run import iteration_pricer
    from topology.experiment import build_plan

    setup = _setup(requests, rate_per_s, replicas)
    basis = resolve_basis(setup.experiment)
    plan = build_plan(setup.experiment, PLAN)
    pricer = iteration_pricer(basis, plan)
    horizon_s = requests / rate_per_s

    def progress(now_s: float, iterations: int) -> None:
        if iterations % (64 * 2048) == 0:
            print(f"[fleet] {now_s / horizon_s:.0%} of the arrivals' span, {iterations} iterations",
                  file=sys.stderr, flush=True)

    itl_percents = tuple(slo.quantile_percent for slo in setup.slos.slos if slo.metric == "itl")
    summary = summarize_serving(request_source(setup.workload), setup.scheduler_for(plan), pricer.shape_time_s,
                                pipeline_depth=plan.num_stages, replicas=replicas, router=setup.router,
                                itl_percents=itl_percents, progress=progress)
    metrics = summary_metrics(summary, num_gpus=plan.num_devices * replicas, slos=setup.slos)
    return {"iterations": summary.iterations, **_metrics_figures(metrics)}


def run_case(name: str, args: argparse.Namespace) -> dict[str, object]:
    if name == "reference":
        return {"wall_s": reference_s()}
    if name == "capacity":
        figures = simulate_case(args.probe_requests, PROBE_RATE_PER_S, "fast")
        return {**figures, "capacity_requests_per_s": figures["requests_per_s"]}
    if name == "one-replica":
        return simulate_case(args.requests, args.rate, "fast")
    if name == "one-replica-reference":
        return simulate_case(args.requests, args.rate, "reference")
    return fleet_case(args.fleet_requests, args.rate * args.replicas, args.replicas)


def measure(name: str, args: argparse.Namespace, rate_per_s: float = 0.0) -> dict[str, object]:
    command = [sys.executable, str(Path(__file__).resolve()), "--case", name, "--rate", repr(rate_per_s),
               "--requests", str(args.requests), "--fleet-requests", str(args.fleet_requests),
               "--replicas", str(args.replicas), "--probe-requests", str(args.probe_requests)]
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=REPO, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"case {name} failed (exit {done.returncode})")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=10_000, help="requests of the one-replica case")
    parser.add_argument("--fleet-requests", type=int, default=1_000_000, help="requests of the fleet case")
    parser.add_argument("--replicas", type=int, default=64, help="replicas of the fleet case")
    parser.add_argument("--probe-requests", type=int, default=3_000, help="requests of the capacity probe")
    parser.add_argument("--load", type=float, default=0.8, help="offered load as a fraction of the capacity")
    parser.add_argument("--with-reference", action="store_true", help="also the one-replica case, reference driver")
    args = parser.parse_args()
    if args.case:
        started = time.perf_counter()
        figures = run_case(args.case, args)
        figures.setdefault("wall_s", time.perf_counter() - started)
        figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return
    reference = float(measure("reference", args)["wall_s"])  # type: ignore[arg-type]
    probe = measure("capacity", args)
    rate = args.load * float(probe["capacity_requests_per_s"])  # type: ignore[arg-type]
    rows = [("capacity", probe), ("one-replica", measure("one-replica", args, rate))]
    if args.with_reference:
        rows.append(("one-replica-reference", measure("one-replica-reference", args, rate)))
    rows.append(("fleet", measure("fleet", args, rate)))
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"reference (10^6 SimPy timeouts): {reference:.2f} s")
    print(f"capacity of one replica: {float(probe['capacity_requests_per_s']):.2f} requests/s "  # type: ignore[arg-type]
          f"(probe of {args.probe_requests} requests); load {args.load}: {rate:.2f} requests/s per replica")
    print(f"one-replica: {args.requests} requests; fleet: {args.fleet_requests} requests over {args.replicas} replicas")
    header = (f"{'case':<22} {'wall s':>8} {'x ref':>8} {'peak MB':>8} {'iterations':>11} {'finished':>9} "
              f"{'rejected':>8} {'preempt':>7} {'p99 TTFT s':>10} {'p99 TPOT s':>10} {'stable':>6}  target")
    print(header)
    for name, figures in rows:
        wall = float(figures["wall_s"])  # type: ignore[arg-type]
        print(f"{name:<22} {wall:>8.2f} {wall / reference:>8.2f} {float(figures['peak_rss_mb']):>8.0f} "  # type: ignore[arg-type]
              f"{figures['iterations']!s:>11} {figures['finished']!s:>9} {figures['rejected']!s:>8} "
              f"{figures['preemptions']!s:>7} {float(figures['ttft_p99_s']):>10.4f} "  # type: ignore[arg-type]
              f"{float(figures['tpot_p99_s']):>10.4f} {figures['stable']!s:>6}  {TARGETS.get(name, '')}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
