"""What a capacity search returns: every deployment's finding, the ranking, and how the search went."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from serving.scheduler_config import SchedulerConfig
from serving.slo import SloSpec
from serving.slo_flags import slo_flag_text
from sim.capacity.crossover import Crossover, describe_crossover
from sim.capacity.options import CapacityOptions
from sim.capacity.probe import ProbeResult
from sim.capacity.space import Deployment

CAPACITY_SCHEMA_VERSION = 1
RESOLVED = "resolved"
PRUNED_BY_BOUND = "pruned by bound"


@dataclass(frozen=True)
class Finding:
    """One deployment: its status, its capacity (``capacity_per_s``: the highest grid rate met, requests/s
    over all its GPUs; the true capacity is below ``capacity_per_s * (1 + resolution)``), its bound, the
    probes behind it, the probe at capacity and the band its iteration times carry."""

    deployment: Deployment
    status: str  # RESOLVED, PRUNED_BY_BOUND, "below threshold", "below floor", "cannot serve the rate",
    # or "infeasible: <why>"
    capacity_index: int | None
    capacity_per_s: float | None
    bound_per_s: float
    limited_by: str  # what limits the bound
    probes: tuple[ProbeResult, ...]
    band: str  # e.g. "±4.8%", "±4.8% (partial)", "none"
    band_text: str  # the whole phrase (topology.accuracy.describe_band)
    scheduler: SchedulerConfig | None = None  # one replica's (prefill replica's, disaggregated)
    rank: int | None = None  # RESOLVED rows, 1 = best; ties share a rank
    tied: bool = False

    @property
    def per_gpu(self) -> float | None:
        return None if self.capacity_per_s is None else self.capacity_per_s / self.deployment.gpus

    @property
    def at_capacity(self) -> ProbeResult | None:
        return next((p for p in self.probes if p.index == self.capacity_index and p.met), None)


@dataclass(frozen=True)
class SearchCounts:
    deployments: int
    infeasible: int
    pruned_by_bound: int
    resolved: int
    below_threshold: int
    probes_simulated: int
    probes_stood_in: int  # verdicts reused from an identical run of another setting
    probes_stopped_early: int
    iterations_simulated: int


@dataclass(frozen=True)
class CapacityResult:
    experiment: str
    model: str
    cluster: str
    options: CapacityOptions
    ranked: tuple[Finding, ...]  # resolved, best first (the objective's order)
    others: tuple[Finding, ...]  # the rest: pruned, below threshold, infeasible, cannot serve
    counts: SearchCounts
    requests: int  # requests in the workload
    rejected_over_max_len: int  # requests every deployment rejects (prompt + output > max_model_len)
    notes: tuple[str, ...]
    parameters: str  # the cost model's profile
    host_time_note: str  # whether the per-iteration host time is measured
    runner: str
    wall_s: float
    crossover: Crossover | None = None  # with disaggregated deployments and a TPOT SLO
    crossover_note: str = ""  # why there is no crossover, when asked for and missing

    @property
    def crossover_line(self) -> str:
        return describe_crossover(self.crossover) if self.crossover is not None else self.crossover_note

    @property
    def best(self) -> Finding | None:
        return self.ranked[0] if self.ranked else None

    @property
    def ties_for_best(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.ranked if f.rank == 1)


def _probe_dict(probe: ProbeResult) -> dict[str, Any]:
    return {**asdict(probe), "latencies_s": dict(probe.latencies_s)}


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    d = finding.deployment
    at = finding.at_capacity
    return {
        "key": d.key, "kind": d.kind, "plan": d.plan.label, "plan_origin": d.plan.origin,
        "decode_plan": None if d.decode_plan is None else d.decode_plan.label,
        "replicas": d.replicas, "decode_replicas": d.decode_replicas, "router": d.router, "gpus": d.gpus,
        "max_num_seqs": d.knobs.max_num_seqs, "max_num_batched_tokens": d.knobs.max_num_batched_tokens,
        "chunked_prefill": d.knobs.chunked_prefill, "status": finding.status, "rank": finding.rank,
        "tied": finding.tied, "capacity_index": finding.capacity_index, "capacity_per_s": finding.capacity_per_s,
        "capacity_per_s_per_gpu": finding.per_gpu, "bound_per_s": finding.bound_per_s,
        "bound_limited_by": finding.limited_by, "band": finding.band_text,
        "at_capacity_latencies_s": None if at is None else dict(at.latencies_s),
        "num_blocks": None if finding.scheduler is None else finding.scheduler.num_blocks,
        "probes": [_probe_dict(p) for p in finding.probes],
    }


def _slos_dict(slos: SloSpec) -> list[dict[str, Any]]:
    return [{"metric": s.metric, "percentile": s.percentile, "bound_s": s.bound_s, "flag": slo_flag_text(s)}
            for s in slos.slos]


def _crossover_dict(result: CapacityResult) -> dict[str, Any] | None:
    c = result.crossover
    if c is None:
        return None if not result.crossover_note else {"line": result.crossover_note}

    def points(sweep: tuple[Any, ...]) -> list[dict[str, Any]]:
        return [{"bound_s": p.bound_s, "capacity_index": p.capacity_index, "capacity_per_s_per_gpu": p.per_gpu,
                 "at_capacity": None if p.at_capacity is None else _probe_dict(p.at_capacity)} for p in sweep]

    return {"metric": c.metric, "percentile": c.percentile, "aggregated": c.aggregated,
            "disaggregated": c.disaggregated, "winners": [{"bound_s": b, "winner": w} for b, w in c.winners],
            "aggregated_points": points(c.aggregated_points), "disaggregated_points": points(c.disaggregated_points),
            "line": result.crossover_line}


def capacity_result_to_dict(result: CapacityResult) -> dict[str, Any]:
    o = result.options
    return {
        "schema_version": CAPACITY_SCHEMA_VERSION,
        "experiment": result.experiment, "model": result.model, "cluster": result.cluster,
        "objective": {"kind": o.objective.kind, "rate_per_s": o.objective.rate_per_s},
        "slos": _slos_dict(o.slos), "gpu_budget": o.gpu_budget, "resolution": o.resolution,
        "space": asdict(o.space), "top": o.top, "wave": o.wave, "max_waiting_fraction": o.max_waiting_fraction,
        "parameters": result.parameters, "host_time": result.host_time_note, "runner": result.runner,
        "requests": result.requests, "rejected_over_max_len": result.rejected_over_max_len,
        "counts": asdict(result.counts), "notes": list(result.notes), "wall_s": result.wall_s,
        "crossover": _crossover_dict(result),
        "ranked": [finding_to_dict(f) for f in result.ranked],
        "others": [finding_to_dict(f) for f in result.others],
    }
