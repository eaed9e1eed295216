"""Every deployment of the space, with its scheduler, its capacity bound, or why it cannot serve at all.

Pure: plans, their iteration floors and the workload's requests in, a list of :class:`Candidate` out.
The space is the product of the replica plans, the scheduler settings (those the scheduler accepts:
no chunking needs a budget of at least ``max_model_len_tokens``), the replica counts (given, or 1, 2,
4, ... within the budget) and the routers (one router for one replica: they are all the same then).
Disaggregated deployments (when asked) use each plan for both pools, with the same settings, and every
count of P prefill and D decode replicas (P, D >= 1) whose GPUs fit the budget; their bound is
:func:`sim.capacity.bound.pools_bound`.

A deployment cannot serve at all (``infeasible`` says why, and no simulation runs) when its plan leaves
no HBM for one KV block at this token budget, when its KV pool could never hold some request that fits
``max_model_len_tokens`` (it would reject what others serve), or when even unloaded it misses an SLO
(:func:`sim.capacity.bound.unloaded_violation`).
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.scheduler_config import SchedulerConfig
from serving.setup import ServingSetup
from serving.slo import SloSpec
from sim.capacity.bound import (
    PoolsBound,
    ReplicaBound,
    RequestShapes,
    kv_rejections,
    pools_bound,
    replica_bound,
    unloaded_latencies_s,
    unloaded_violation,
)
from sim.capacity.floor import IterationFloor
from sim.capacity.settings import deployment_scheduler
from sim.capacity.space import Deployment, Knobs, ReplicaPlan
from topology.errors import LayerwiseError
from topology.partition.space import Layout


@dataclass(frozen=True)
class Candidate:
    """A deployment before any simulation: its scheduler, bound (requests/s, all replicas) and, if it
    can never meet the SLOs, why."""

    deployment: Deployment
    scheduler: SchedulerConfig | None
    bound: ReplicaBound | None  # one replica's
    bound_per_s: float
    infeasible: str = ""
    pools: PoolsBound | None = None  # disaggregated: each pool's bound

    @property
    def limited_by(self) -> str:
        if self.pools is not None:
            return self.pools.limited_by
        return "-" if self.bound is None else self.bound.limited_by


def replica_counts(plan_gpus: int, budget: int, given: tuple[int, ...] | None) -> tuple[int, ...]:
    """The replica counts of a plan of ``plan_gpus`` GPUs within ``budget`` GPUs."""
    most = budget // plan_gpus
    if given is not None:
        return tuple(r for r in sorted(set(given)) if r <= most)
    counts, r = [], 1
    while r <= most:
        counts.append(r)
        r *= 2
    return tuple(counts)


def valid_knobs(setup: ServingSetup, max_num_seqs: tuple[int, ...], budgets: tuple[int, ...],
                chunked: tuple[bool, ...]) -> tuple[tuple[Knobs, ...], tuple[str, ...]]:
    """The settings the scheduler accepts, and a note for each one it refuses."""
    kept, notes = [], []
    limit = setup.scheduler.max_model_len_tokens
    for chunk in sorted(set(chunked), reverse=True):
        for tokens in sorted(set(budgets)):
            if not chunk and tokens < limit:
                notes.append(f"no chunking with a {tokens}-token budget: a prompt of up to {limit} tokens "
                             f"(max_model_len_tokens) must fit one iteration")
                continue
            if tokens < setup.scheduler.block_size_tokens:
                notes.append(f"a {tokens}-token budget is smaller than one KV block")
                continue
            kept += [Knobs(seqs, tokens, chunk) for seqs in sorted(set(max_num_seqs))]
    return tuple(kept), tuple(notes)


def _aggregated(setup: ServingSetup, plan: ReplicaPlan, floor: IterationFloor, knobs: Knobs,
                shapes: RequestShapes, slos: SloSpec) -> tuple[SchedulerConfig | None, ReplicaBound | None, str]:
    """One replica's scheduler, bound and infeasibility (the same for every replica count and router)."""
    try:
        scheduler = deployment_scheduler(setup, plan.plan, knobs)
    except LayerwiseError as exc:
        return None, None, f"no KV cache room: {exc.message}"
    rejected = kv_rejections(shapes, scheduler.num_blocks, scheduler.block_size_tokens)
    if rejected:
        return scheduler, None, (f"its KV pool ({scheduler.num_blocks} blocks of {scheduler.block_size_tokens} "
                                 f"tokens) cannot hold {rejected} of the requests")
    counts, values = floor.step_values_s(knobs.max_num_batched_tokens, scheduler.cuda_graph_sizes)
    bound = replica_bound(counts, values, plan.stages, knobs.max_num_seqs, knobs.max_num_batched_tokens,
                          scheduler.num_blocks, scheduler.block_size_tokens, shapes)
    missed = unloaded_violation(unloaded_latencies_s(counts, values, knobs.max_num_batched_tokens, shapes), slos)
    if missed is not None:
        slo, at_least_s = missed
        return scheduler, bound, (f"even unloaded, {slo.metric} {slo.percentile} >= {at_least_s * 1e3:.4g} ms > "
                                  f"{slo.bound_s * 1e3:g} ms")
    return scheduler, bound, ""


def aggregated_candidates(setup: ServingSetup, plans: tuple[ReplicaPlan, ...], floors: dict[Layout, IterationFloor],
                          knobs: tuple[Knobs, ...], budget: int, replicas: tuple[int, ...] | None,
                          routers: tuple[str, ...], shapes: RequestShapes, slos: SloSpec) -> list[Candidate]:
    """Every aggregated deployment within ``budget`` GPUs (module docstring)."""
    found = []
    for plan in plans:
        for knob in knobs:
            scheduler, bound, infeasible = _aggregated(setup, plan, floors[plan.layout], knob, shapes, slos)
            for count in replica_counts(plan.gpus, budget, replicas):
                for router in routers if count > 1 else routers[:1]:
                    deployment = Deployment(plan=plan, replicas=count, router=router, knobs=knob)
                    total = 0.0 if bound is None else count * bound.rate_per_s
                    found.append(Candidate(deployment, scheduler, bound, total, infeasible))
    return found


def disaggregated_candidates(setup: ServingSetup, plans: tuple[ReplicaPlan, ...],
                             floors: dict[Layout, IterationFloor], knobs: tuple[Knobs, ...], budget: int,
                             router: str, shapes: RequestShapes, slos: SloSpec) -> list[Candidate]:
    """Every disaggregated deployment within ``budget`` GPUs (module docstring). Even unloaded, a
    request's prefill and decode iterations are those of an aggregated replica and its KV transfer
    only adds to them, so the aggregated unloaded check applies."""
    found = []
    for plan in plans:
        most = budget // plan.gpus
        for knob in knobs:
            scheduler, bound, infeasible = _aggregated(setup, plan, floors[plan.layout], knob, shapes, slos)
            for prefill in range(1, most):
                for decode in range(1, most - prefill + 1):
                    deployment = Deployment(plan=plan, replicas=prefill, router=router, knobs=knob, decode_plan=plan,
                                            decode_replicas=decode)
                    if scheduler is None or bound is None:
                        found.append(Candidate(deployment, scheduler, bound, 0.0, infeasible))
                        continue
                    counts, values = floors[plan.layout].step_values_s(knob.max_num_batched_tokens,
                                                                       scheduler.cuda_graph_sizes)
                    pools = pools_bound(counts, values, plan.stages, knob.max_num_seqs, knob.max_num_batched_tokens,
                                        scheduler.num_blocks, scheduler.block_size_tokens, shapes, prefill, decode)
                    found.append(Candidate(deployment, scheduler, bound, pools.rate_per_s, infeasible, pools))
    return found
