"""One probe: simulate one deployment (aggregated, or disaggregated: :mod:`serving.disaggregated`) at one
rate and say whether it meets the SLOs.

The run is exactly ``layerwise simulate``'s at that rate (the same requests from the same seed, the same
scheduler, iteration pricer and event driver; :func:`sim.serving.run.simulate_serving` composes the
same public pieces), watched so that it stops once its verdict is known (:mod:`sim.capacity.watch`).
It meets the SLOs when :func:`serving.latency.serving_metrics` says so (every check within its bound,
and a steady state) and it was never overloaded.

A full run also reports how close it came to the scheduler's limits (the most requests running, tokens
in one iteration, KV blocks in use): :mod:`sim.capacity.reuse` uses them to decide that the run of
another setting would have been the same run (aggregated runs only: a disaggregated run reports no
limits, so none stands in for another).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

from serving.at_rate import workload_at_rate
from serving.batch import DECODE, IterationPlan
from serving.disaggregated import KvTransferTime, Pool, run_disaggregated
from serving.driver import ServingRun, run_serving
from serving.latency import ServingMetrics, serving_metrics
from serving.requests import RequestSpec
from serving.scheduler_config import SchedulerConfig
from serving.slo import SloSpec
from serving.sources import OpenLoopSource, open_loop_requests
from serving.workload import ServingWorkload
from sim.capacity.watch import IterationTime, RunWatch, StopRun, watch_limits

REPORTED = (("ttft", "p99"), ("tpot", "p99"), ("e2e", "p99"), ("ttft", "p50"), ("tpot", "p50"))


@dataclass(frozen=True)
class RunLimits:
    """How close a full run came to its scheduler's limits (what reuse needs)."""

    peak_running: int
    max_tokens: int
    peak_kv_blocks: int
    preemptions: int


@dataclass(frozen=True)
class ProbeResult:
    """One deployment at one rate index: the verdict, why, the latencies (full runs), the limits."""

    index: int
    rate_per_s: float
    met: bool
    reason: str  # "" when met
    stopped_early: bool
    latencies_s: tuple[tuple[str, float], ...]  # ("ttft_p99", seconds), ... (full runs)
    limits: RunLimits | None  # full runs only
    iterations: int
    wall_s: float
    stood_in: str = ""  # the deployment whose identical run this verdict is (reuse), or ""
    mixed_decode_fraction: float | None = None  # full aggregated runs: decode tokens that shared an iteration
    # with prefill tokens (prefill interference), of all decode tokens
    kv_wait_mean_s: float | None = None  # full disaggregated runs: first token to KV arrival, mean per request

    def latency_s(self, name: str) -> float | None:
        return dict(self.latencies_s).get(name)


def served_requests(requests: tuple[RequestSpec, ...], max_model_len_tokens: int) -> tuple[RequestSpec, ...]:
    """The requests a deployment serves: those within ``max_model_len`` (the rest are rejected by every
    deployment alike and counted once)."""
    return tuple(spec for spec in requests if spec.total_tokens <= max_model_len_tokens)


def _latencies(metrics: ServingMetrics, slos: SloSpec) -> tuple[tuple[str, float], ...]:
    wanted = list(REPORTED) + [(slo.metric, slo.percentile) for slo in slos.slos]
    found: dict[str, float] = {}
    for metric, percentile in wanted:
        summary = getattr(metrics, metric)
        if summary is not None:
            found[f"{metric}_{percentile}"] = getattr(summary, f"{percentile}_s")
    return tuple(sorted(found.items()))


def _limits(run: ServingRun, metrics: ServingMetrics) -> RunLimits:
    iterations = run.iterations
    return RunLimits(peak_running=max((it.num_running for it in iterations), default=0),
                     max_tokens=max((it.plan.num_tokens for it in iterations), default=0),
                     peak_kv_blocks=max((it.kv_blocks_used for it in iterations), default=0),
                     preemptions=metrics.preemptions)


def mixed_decode_fraction(plans: Sequence[IterationPlan]) -> float | None:
    """Of the decode tokens of these iterations, the fraction computed beside prefill tokens."""
    decodes = mixed = 0
    for plan in plans:
        count = sum(1 for item in plan.items if item.kind == DECODE)
        decodes += count
        if count < len(plan.items):
            mixed += count
    return mixed / decodes if decodes else None


def _reason(metrics: ServingMetrics) -> str:
    if not metrics.stability.stable:
        return metrics.stability.reason
    for check in metrics.slo_checks:
        if not check.met and check.value_s is not None:
            return (f"{check.slo.metric} {check.slo.percentile} {check.value_s * 1e3:.4g} ms > "
                    f"{check.slo.bound_s * 1e3:g} ms")
    return "" if metrics.meets_slos else "nothing finished"


def probe_aggregated(workload: ServingWorkload, rate_per_s: float, index: int, scheduler: SchedulerConfig,
                     price: IterationTime, stages: int, replicas: int, router: str, num_gpus: int, slos: SloSpec,
                     max_waiting_fraction: float) -> ProbeResult:
    """Serve ``workload`` at ``rate_per_s`` on ``replicas`` copies of a plan of ``stages`` stages."""
    started = time.perf_counter()
    requests = open_loop_requests(workload_at_rate(workload, rate_per_s))
    served = served_requests(requests, scheduler.max_model_len_tokens)
    watch = RunWatch(served, watch_limits(served, slos, max_waiting_fraction), exact_ends=stages == 1)
    try:
        run = run_serving(OpenLoopSource(requests), scheduler, watch.timed(price), pipeline_depth=stages,
                          replicas=replicas, router=router)
    except StopRun as stop:
        return ProbeResult(index, rate_per_s, False, stop.reason, True, (), None, watch.calls,
                           time.perf_counter() - started)
    metrics = serving_metrics(run.records, num_gpus=num_gpus, slos=slos)
    return ProbeResult(index, rate_per_s, metrics.meets_slos, _reason(metrics), False, _latencies(metrics, slos),
                       _limits(run, metrics), len(run.iterations), time.perf_counter() - started,
                       mixed_decode_fraction=mixed_decode_fraction([it.plan for it in run.iterations]))


def probe_disaggregated(workload: ServingWorkload, rate_per_s: float, index: int, prefill: Pool, decode: Pool,
                        router: str, kv_transfer_s: KvTransferTime, num_gpus: int, slos: SloSpec,
                        max_waiting_fraction: float) -> ProbeResult:
    """Serve ``workload`` at ``rate_per_s`` on a prefill pool and a decode pool, each request's KV moving
    between them in ``kv_transfer_s`` seconds (:func:`serving.disaggregated.run_disaggregated`)."""
    started = time.perf_counter()
    requests = open_loop_requests(workload_at_rate(workload, rate_per_s))
    served = served_requests(requests, min(prefill.config.max_model_len_tokens, decode.config.max_model_len_tokens))
    watch = RunWatch(served, watch_limits(served, slos, max_waiting_fraction),
                     exact_ends=prefill.depth == 1 and decode.depth == 1)
    try:
        run = run_disaggregated(OpenLoopSource(requests), dataclasses.replace(prefill, iteration_time_s=watch.timed(
            prefill.iteration_time_s)), dataclasses.replace(decode, iteration_time_s=watch.timed(
                decode.iteration_time_s)), router, kv_transfer_s)
    except StopRun as stop:
        return ProbeResult(index, rate_per_s, False, stop.reason, True, (), None, watch.calls,
                           time.perf_counter() - started)
    metrics = serving_metrics(run.records, num_gpus=num_gpus, slos=slos)
    waits = [transfer.end_s - transfer.ready_s for transfer in run.transfers]
    return ProbeResult(index, rate_per_s, metrics.meets_slos, _reason(metrics), False, _latencies(metrics, slos),
                       None, len(run.iterations), time.perf_counter() - started,
                       kv_wait_mean_s=sum(waits) / len(waits) if waits else None)
