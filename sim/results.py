"""The simulator's results: a finished run's event log (:class:`sim.engine.EngineRecord`) turned
into the shared results schema (``topology.results.Metrics``), after the run."""

from __future__ import annotations

from sim.engine import EngineRecord
from sim.passes import PASS_TOTALS
from sim.recorder import StageTally
from topology.plan import Plan
from topology.results import (
    Breakdown,
    Communication,
    DeviceUse,
    Metrics,
    SimulationDetails,
    StageMetrics,
    StageResidency,
)
from topology.workload import Workload


def _total(tally: StageTally, name: str) -> float:
    return tally.totals[PASS_TOTALS.index(name)]


def kernel_s(tally: StageTally) -> float:
    return sum(_total(tally, n) for n in ("compute_s", "weights_s", "kv_s", "activations_s", "launch_s"))


def build_metrics(plan: Plan, workload: Workload, record: EngineRecord, sim_params: dict[str, float]) -> Metrics:
    """The event simulation's metrics from its record (``sim_params``: the parameters it ran with)."""
    log, measured, warmup = record.recorder, workload.measured_iters, workload.warmup_iters
    start_s = max(log.window_start_s) if warmup > 0 else 0.0
    window_s = max(log.window_end_s) - start_s
    step_s = window_s / measured
    tpot_s: float | None = None
    ttft_s: float | None = None
    if workload.phase == "decode":
        spans = [end - (begin if warmup else 0.0) for begin, end in zip(log.window_start_s, log.window_end_s,
                                                                         strict=True)]
        tpot_s = sum(spans) / measured / len(spans)
    else:
        ttft_s = log.ttft_sum_s / log.ttft_count
    stages, devices, residency, busiest = _per_stage(plan, record, measured, step_s)
    simulation = SimulationDetails(
        estimator="events", breakdown=_breakdown(log.tallies[busiest], busiest, measured, step_s),
        communication=_communication(plan, record, measured), residency=tuple(residency), devices=tuple(devices),
        sim_params=sim_params, simulated_iterations=workload.iterations - record.skipped_iterations,
        skipped_iterations=record.skipped_iterations, simulated_events=log.events, simulated_time_s=record.end_s,
        measured_window_s=window_s)
    return Metrics(tokens_per_s=workload.tokens_per_iteration / step_s, step_time_s=step_s, tpot_s=tpot_s,
                   ttft_s=ttft_s, microbatches=plan.microbatches, plan_label=plan.describe(), stages=tuple(stages),
                   simulation=simulation)


BUSIEST_TIE = 1e-9  # relative: busy times this close are the same


def _per_stage(plan: Plan, record: EngineRecord, measured: int,
               step_s: float) -> tuple[list[StageMetrics], list[DeviceUse], list[StageResidency], int]:
    """Per stage: its time per iteration, its devices' use, its L2 residency; and the busiest stage."""
    stages: list[StageMetrics] = []
    devices: list[DeviceUse] = []
    residency: list[StageResidency] = []
    busy: list[float] = []
    for stage, tally in zip(plan.stages, record.recorder.tallies, strict=True):
        comp = kernel_s(tally) / measured
        comm = (tally.allreduce_s + tally.send_s) / measured
        idle = max(0.0, step_s - comp - comm)
        stages.append(StageMetrics(stage.index, stage.devices, comp, comm, idle))
        busy.append(comp + comm)
        res = record.passes.get(stage.index, plan_iteration(record)).stage_pass.residency
        residency.append(res.summary(stage.index))
        hbm, l2_bytes = _total(tally, "hbm_bytes") / measured, _total(tally, "l2_bytes") / measured
        weight_reads = res.weights_bytes * tally.passes / measured
        devices += [DeviceUse(device, stage.index, (comp + comm) / step_s, comp / step_s, comm / step_s,
                              idle / step_s, hbm, l2_bytes, l2_bytes / weight_reads if weight_reads else 0.0)
                    for device in stage.devices]
    top = max(busy)  # stages alike tie up to rounding: the first of them, whatever the summation order
    busiest = next(s for s, b in enumerate(busy) if b >= top * (1.0 - BUSIEST_TIE))
    return stages, devices, residency, busiest


def plan_iteration(record: EngineRecord) -> int:
    """An iteration whose passes stand for the measured ones (the residency is reported from it)."""
    return record.recorder.warmup


def _breakdown(tally: StageTally, stage: int, measured: int, step_s: float) -> Breakdown:
    parts = {
        "compute_s": _total(tally, "compute_s") / measured,
        "weights_s": _total(tally, "weights_s") / measured,
        "kv_cache_s": _total(tally, "kv_s") / measured,
        "activations_s": _total(tally, "activations_s") / measured,
        "launch_s": _total(tally, "launch_s") / measured,
        "communication_s": (tally.allreduce_s + tally.send_s) / measured,
    }
    return Breakdown(stage=stage, bubble_s=max(0.0, step_s - sum(parts.values())), **parts)


def _communication(plan: Plan, record: EngineRecord, measured: int) -> Communication:
    t = record.recorder.tallies
    last = len(t) - 1
    return Communication(
        collective_events_per_iteration=sum(x.allreduce_events for x in t) / measured,
        collective_bytes_sent_per_iteration=sum(x.allreduce_bytes_sent * len(s.devices)
                                                for x, s in zip(t, plan.stages, strict=True)) / measured,
        p2p_transfers_per_iteration=sum(x.passes for s, x in enumerate(t) if s < last) / measured,
        loopback_transfers_per_iteration=t[last].passes / measured if record.loops_back else 0.0,
        p2p_messages_per_iteration=sum(x.passes * m for x, m in zip(t, record.messages_per_pass, strict=True))
        / measured,
        bytes_sent_total=sum(record.bytes_sent.values()),
        bytes_received_total=sum(record.bytes_received.values()),
    )
