"""Turn an engine record into the shared results schema (``topology.results.Metrics``)."""

from __future__ import annotations

from typing import Any

from sim.engine import EngineRecord, StageTally
from sim.program import PASS_TOTALS
from topology.plan import Plan
from topology.results import Metrics, StageMetrics
from topology.workload import Workload

# The seed's own count (experiments-detailed.md, "Communication Overhead"):
# baseline 16 x (8 + 2) = 160, layer-wise 15 x 1 = 15 communication events per batch.
SEED_CLAIMED_EVENTS_PER_BATCH = {"tp-pp": 160, "layer-wise": 15}
PAPER_TPOT_LABEL = "paper_tpot_s = 1 / tokens_per_s, the seed paper's definition of TPOT (not a latency)"
BREAKDOWN_KEYS = ("compute", "weights", "kv_cache", "activations", "launch", "communication", "bubble")


def _total(tally: StageTally, name: str) -> float:
    return tally.totals[PASS_TOTALS.index(name)]


def kernel_s(tally: StageTally) -> float:
    return sum(_total(tally, n) for n in ("compute_s", "weights_s", "kv_s", "activations_s", "launch_s"))


def measured_window(record: EngineRecord, workload: Workload) -> tuple[float, float]:
    warmup, last = workload.warmup_iters, workload.iterations - 1
    start = max(c[warmup - 1] for c in record.completions_s) if warmup > 0 else 0.0
    return start, max(c[last] for c in record.completions_s)


def build_metrics(plan: Plan, workload: Workload, record: EngineRecord) -> Metrics:
    passes = record.passes
    measured = workload.measured_iters
    warmup = workload.warmup_iters
    start_s, end_s = measured_window(record, workload)
    window_s = end_s - start_s
    step_s = window_s / measured
    tokens_per_s = workload.tokens_per_iteration / step_s
    tpot_s: float | None = None
    ttft_s: float | None = None
    if workload.phase == "decode":
        tpot_s = sum((c[-1] - (c[warmup - 1] if warmup else 0.0)) / measured for c in record.completions_s) / len(
            record.completions_s)
    else:
        firsts = []
        for it in range(warmup, workload.iterations):
            batch_start = max(c[it - 1] for c in record.completions_s) if it else 0.0
            firsts += [c[it] - batch_start for c in record.completions_s]
        ttft_s = sum(firsts) / len(firsts)
    stages: list[StageMetrics] = []
    devices: dict[str, dict[str, Any]] = {}
    l2: list[dict[str, Any]] = []
    busiest = (0.0, 0)
    for stage, tally in zip(plan.stages, record.tallies, strict=True):
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
    bottleneck = record.tallies[busiest[1]]
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
        "paper_tpot_label": PAPER_TPOT_LABEL,
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
        "simulated_events": record.events,
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
    t = record.tallies
    collectives = sum(x.allreduce_events for x in t) / measured
    forward = sum(x.p2p_transfers for x in t) / measured
    loopback = sum(x.loopback_transfers for x in t) / measured
    return {
        "collective_events_per_iteration": collectives,
        "collective_bytes_sent_per_iteration": sum(x.allreduce_bytes_sent * len(s.devices)
                                                   for x, s in zip(t, plan.stages, strict=True)) / measured,
        "p2p_transfers_per_iteration": forward,
        "loopback_transfers_per_iteration": loopback,
        "p2p_messages_per_iteration": sum(x.p2p_messages for x in t) / measured,
        "events_per_batch": collectives + forward + loopback,
        "seed_claimed_events_per_batch": SEED_CLAIMED_EVENTS_PER_BATCH.get(plan.schedule),
        "bytes_sent_total": sum(record.bytes_sent.values()),
        "bytes_received_total": sum(record.bytes_received.values()),
    }
