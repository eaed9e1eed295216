"""Turn an engine record into the shared results schema (``topology.results.Metrics``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sim.program import PASS_TOTALS, PassProgram
from topology.plan import Plan
from topology.results import Metrics, StageMetrics
from topology.workload import Workload

if TYPE_CHECKING:
    from sim.engine import EngineRecord

BREAKDOWN_KEYS = ("compute", "weights", "kv_cache", "activations", "launch", "communication", "bubble")


@dataclass
class StageTally:
    """Sums over one stage's measured passes (per device of its TP group)."""

    passes: float = 0.0
    allreduce_s: float = 0.0  # collective time, waiting for busy links included
    send_s: float = 0.0  # point-to-point send time, waiting for busy links included
    totals: list[float] = field(default_factory=lambda: [0.0] * len(PASS_TOTALS))  # PASS_TOTALS of the programs
    allreduce_events: float = 0.0
    allreduce_bytes_sent: float = 0.0

    FIELDS = 5 + len(PASS_TOTALS)

    def vector(self) -> list[float]:
        return [self.passes, self.allreduce_s, self.send_s, self.allreduce_events, self.allreduce_bytes_sent,
                *self.totals]

    def add_vector(self, values: list[float]) -> None:
        self.passes += values[0]
        self.allreduce_s += values[1]
        self.send_s += values[2]
        self.allreduce_events += values[3]
        self.allreduce_bytes_sent += values[4]
        self.totals = [t + v for t, v in zip(self.totals, values[5:], strict=True)]


class Recorder:
    """The simulation's event log, folded into tallies as each record arrives.

    The stages report every finished pass, the last stage every token that leaves, and the prefill
    driver every batch it starts; nothing per event is kept. Only passes of measured iterations
    (``iteration >= warmup``) count toward the tallies; every pass counts toward the traffic.
    """

    def __init__(self, num_stages: int, microbatches: int, warmup: int, iterations: int) -> None:
        self.warmup, self.last = warmup, iterations - 1
        self.tallies = [StageTally() for _ in range(num_stages)]
        self.passes_run = [0.0] * num_stages  # every iteration: what the links carried
        self.events = 0.0  # the events these passes take (steps, sends), as if none were skipped
        self.window_start_s = [0.0] * microbatches  # when each microbatch left iteration warmup - 1
        self.window_end_s = [0.0] * microbatches  # ... and the last iteration
        self.ttft_sum_s = 0.0  # prefill: time from its batch's start to each measured token leaving
        self.ttft_count = 0.0
        self.batch_start_s: dict[int, float] = {}

    def pass_done(self, stage: int, iteration: int, program: PassProgram, allreduce_s: float, send_s: float) -> None:
        self.passes_run[stage] += 1
        self.events += len(program.steps) + (send_s > 0.0)
        if iteration < self.warmup:
            return
        tally = self.tallies[stage]
        tally.passes += 1
        tally.allreduce_s += allreduce_s
        tally.send_s += send_s
        tally.totals = [t + v for t, v in zip(tally.totals, program.totals, strict=True)]
        tally.allreduce_events += program.allreduce_count
        tally.allreduce_bytes_sent += program.allreduce_bytes_sent

    def completed(self, microbatch: int, iteration: int, now_s: float) -> None:
        if iteration == self.warmup - 1:
            self.window_start_s[microbatch] = now_s
        if iteration == self.last:
            self.window_end_s[microbatch] = now_s
        if iteration >= self.warmup and iteration in self.batch_start_s:
            self.ttft_sum_s += now_s - self.batch_start_s[iteration]
            self.ttft_count += 1

    def batch_started(self, iteration: int, now_s: float) -> None:
        self.batch_start_s = {iteration: now_s}  # batches do not overlap

    def counters(self) -> tuple[float, ...]:
        """Every tally as one vector (what the steady state multiplies)."""
        values = [v for tally in self.tallies for v in tally.vector()]
        return (*values, *self.passes_run, self.events, self.ttft_sum_s, self.ttft_count)

    def advance(self, periods: int, growth: list[float]) -> None:
        """Add ``periods`` times ``growth`` (one period's change of :meth:`counters`)."""
        width, k = StageTally.FIELDS, len(self.tallies)
        scaled = [periods * g for g in growth]
        for index, tally in enumerate(self.tallies):
            tally.add_vector(scaled[index * width:(index + 1) * width])
        rest = scaled[k * width:]
        self.passes_run = [p + g for p, g in zip(self.passes_run, rest[:k], strict=True)]
        self.events += rest[k]
        self.ttft_sum_s += rest[k + 1]
        self.ttft_count += rest[k + 2]

    def shift_batches(self, iterations: int, delta_s: float) -> None:
        self.batch_start_s = {it + iterations: t + delta_s for it, t in self.batch_start_s.items()}


def _total(tally: StageTally, name: str) -> float:
    return tally.totals[PASS_TOTALS.index(name)]


def kernel_s(tally: StageTally) -> float:
    return sum(_total(tally, n) for n in ("compute_s", "weights_s", "kv_s", "activations_s", "launch_s"))


def build_metrics(plan: Plan, workload: Workload, record: EngineRecord) -> Metrics:
    passes, log = record.passes, record.recorder
    measured = workload.measured_iters
    warmup = workload.warmup_iters
    start_s = max(log.window_start_s) if warmup > 0 else 0.0
    window_s = max(log.window_end_s) - start_s
    step_s = window_s / measured
    tokens_per_s = workload.tokens_per_iteration / step_s
    tpot_s: float | None = None
    ttft_s: float | None = None
    if workload.phase == "decode":
        spans = [end - (begin if warmup else 0.0) for begin, end in zip(log.window_start_s, log.window_end_s,
                                                                         strict=True)]
        tpot_s = sum(spans) / measured / len(spans)
    else:
        ttft_s = log.ttft_sum_s / log.ttft_count
    stages: list[StageMetrics] = []
    devices: dict[str, dict[str, Any]] = {}
    l2: list[dict[str, Any]] = []
    busiest = (0.0, 0)
    for stage, tally in zip(plan.stages, log.tallies, strict=True):
        comp = kernel_s(tally) / measured
        comm = (tally.allreduce_s + tally.send_s) / measured
        idle = max(0.0, step_s - comp - comm)
        stages.append(StageMetrics(stage.index, stage.devices, comp, comm, idle))
        busiest = max(busiest, (comp + comm, stage.index))
        res = passes.get(stage.index, warmup).stage_pass.residency
        l2.append(res.summary(stage.index))
        hbm, l2_bytes = _total(tally, "hbm_bytes") / measured, _total(tally, "l2_bytes") / measured
        weight_reads = res.weights_bytes * tally.passes / measured
        for device in stage.devices:
            devices[device] = {
                "stage": stage.index,
                "busy_fraction": (comp + comm) / step_s,
                "compute_fraction": comp / step_s,
                "communication_fraction": comm / step_s,
                "idle_fraction": idle / step_s,
                "bubble_fraction": idle / step_s,  # no host stalls are modelled: every idle second waits for input
                "hbm_bytes_per_iteration": hbm,
                "l2_bytes_per_iteration": l2_bytes,
                "l2_hit_fraction": l2_bytes / weight_reads if weight_reads else 0.0,
            }
    bottleneck = log.tallies[busiest[1]]
    breakdown = {
        "compute": _total(bottleneck, "compute_s") / measured,
        "weights": _total(bottleneck, "weights_s") / measured,
        "kv_cache": _total(bottleneck, "kv_s") / measured,
        "activations": _total(bottleneck, "activations_s") / measured,
        "launch": _total(bottleneck, "launch_s") / measured,
        "communication": (bottleneck.allreduce_s + bottleneck.send_s) / measured,
    }
    breakdown["bubble"] = max(0.0, step_s - sum(breakdown.values()))
    extra: dict[str, Any] = {
        "step_breakdown_s": breakdown,
        "breakdown_device_stage": busiest[1],
        "dominant_cost": max(BREAKDOWN_KEYS, key=lambda key: breakdown[key]),
        "devices": devices,
        "l2": l2,
        "l2_fit": fit_summary([entry["fit"] for entry in l2]),
        "communication": _communication(plan, record, measured),
        "hbm_fit": [{"stage": s.index, "total_bytes": s.footprint.total_bytes,
                     "capacity_bytes": plan.device_hbm_capacity_bytes,
                     "fits": s.footprint.total_bytes <= plan.device_hbm_capacity_bytes} for s in plan.stages],
        "measured_window_s": window_s,
        "simulated_time_s": record.end_s,
        "simulated_events": log.events,
        "steady_state": {"skipped_iterations": record.skipped_iterations,
                         "simulated_iterations": workload.iterations - record.skipped_iterations},
        "microbatches": plan.microbatches,
        "plan": plan.describe(),
    }
    return Metrics(tokens_per_s=tokens_per_s, step_time_s=step_s, tpot_s=tpot_s, ttft_s=ttft_s,
                   paper_tpot_s=1.0 / tokens_per_s, stages=tuple(stages), extra=extra)


def fit_summary(fits: list[str]) -> str:
    if all(f == "full" for f in fits):
        return "all stages fit"
    if all(f == "none" for f in fits):
        return "no stage fits"
    return f"{sum(f != 'none' for f in fits)} of {len(fits)} stages fit (fully or partly)"


def _communication(plan: Plan, record: EngineRecord, measured: int) -> dict[str, Any]:
    t = record.recorder.tallies
    last = len(t) - 1
    collectives = sum(x.allreduce_events for x in t) / measured
    forward = sum(x.passes for s, x in enumerate(t) if s < last) / measured
    loopback = t[last].passes / measured if record.loops_back else 0.0
    return {
        "collective_events_per_iteration": collectives,
        "collective_bytes_sent_per_iteration": sum(x.allreduce_bytes_sent * len(s.devices)
                                                   for x, s in zip(t, plan.stages, strict=True)) / measured,
        "p2p_transfers_per_iteration": forward,
        "loopback_transfers_per_iteration": loopback,
        "p2p_messages_per_iteration": sum(x.passes * m for x, m in zip(t, record.messages_per_pass, strict=True))
        / measured,
        "events_per_batch": collectives + forward + loopback,
        "bytes_sent_total": sum(record.bytes_sent.values()),
        "bytes_received_total": sum(record.bytes_received.values()),
    }
