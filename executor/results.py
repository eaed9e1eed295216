"""Per-rank timings -> the shared results schema (``topology.results``). Pure: no torch.

``step_time_s`` is the slowest rank's measured wall time over the measured iterations
(decode: one closed-loop round in which every sequence gets one token; prefill: one forward
of the whole batch). Per stage (mean over its ranks, per iteration): ``communication_s`` =
TP all-reduces (the per-call time measured apart on the stage's group, times the calls per
iteration; the calls run inside the forward, captured in the CUDA graph in graph mode),
``compute_s`` = forward time minus that, ``idle_s`` = the rest of the step (waiting for the
input: pipeline bubbles and the point-to-point transfer).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from topology.plan import Plan
from topology.results import HardwareDetails, Metrics, RankTiming, StageMetrics
from topology.workload import Workload


def rank_record(
    rank: int, stage: int, elapsed_s: float, measured_iters: int, forward_s: float, wait_s: float,
    allreduce_s: float, allreduces_per_iter: int,
) -> dict[str, Any]:
    """One rank's timings per iteration (what each rank contributes to the gather)."""
    iters = max(measured_iters, 1)
    return {
        "rank": rank,
        "stage": stage,
        "step_time_s": elapsed_s / iters,
        "forward_s": forward_s / iters,
        "input_wait_s": wait_s / iters,
        "allreduce_call_s": allreduce_s,
        "allreduces_per_iter": allreduces_per_iter,
    }


def build_metrics(plan: Plan, workload: Workload, records: list[dict[str, Any]], hardware: HardwareDetails) -> Metrics:
    """The run's metrics from every rank's record; ``hardware``: how it ran (its ranks are added here)."""
    step_time_s = max(r["step_time_s"] for r in records)
    tokens_per_s = workload.tokens_per_iteration / step_time_s
    stages = []
    for stage in plan.stages:
        mine = [r for r in records if r["stage"] == stage.index]
        n = len(mine)
        comm = sum(r["allreduce_call_s"] * r["allreduces_per_iter"] for r in mine) / n
        forward = sum(r["forward_s"] for r in mine) / n
        compute = max(forward - comm, 0.0)
        stages.append(StageMetrics(
            stage=stage.index,
            devices=stage.devices,
            compute_s=compute,
            communication_s=comm,
            idle_s=max(step_time_s - compute - comm, 0.0),
        ))
    decode = workload.phase == "decode"
    return Metrics(
        tokens_per_s=tokens_per_s,
        step_time_s=step_time_s,
        tpot_s=step_time_s if decode else None,
        ttft_s=None if decode else step_time_s,
        microbatches=plan.microbatches,
        plan_label=plan.describe(),
        stages=tuple(stages),
        hardware=replace(hardware, ranks=tuple(RankTiming(**r) for r in sorted(records, key=lambda r: r["rank"]))),
    )
