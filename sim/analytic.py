"""The analytic twin: closed-form metrics from the same pure cost functions, no contention.

Per stage ``s``, one microbatch pass occupies the stage for ``occ_s = T_s + P_s``: kernels and
all-reduces ``T_s`` (:func:`sim.costs.stage.stage_pass`) plus the blocking send to the next
stage ``P_s`` (in decode the last stage sends back to stage 0; the messages of one boundary
contend with each other on shared hops, :func:`sim.costs.transfers.boundary_time_s`). The step follows
from the occupancies by the pipeline formulas of :mod:`sim.costs.pipeline`.

A growing context is evaluated at the mean context of the measured iterations: the stage
passes at the two iterations around the mean are averaged (attention cost is linear in the
context, so this is exact while no kernel changes regime).
"""

from __future__ import annotations

from sim.costs import pipeline
from sim.costs.model import CostModel
from sim.costs.residency import plan_counts_sram
from sim.costs.stage import StagePass, stage_pass
from sim.costs.transfers import Transfer, boundary_time_s, boundary_transfers
from topology.cluster import Cluster
from topology.plan import Plan
from topology.results import Breakdown, Communication, Metrics, SimulationDetails, StageMetrics
from topology.workload import TokenShape, Workload


def analytic_shapes(workload: Workload, microbatches: int) -> list[TokenShape]:
    """The token shape(s) whose average is the measured iterations' mean context."""
    if workload.phase == "decode" and workload.context_growth == "grow":
        first, last = workload.warmup_iters, workload.iterations - 1
        return [workload.token_shape(microbatches, (first + last) // 2),
                workload.token_shape(microbatches, (first + last + 1) // 2)]
    return [workload.token_shape(microbatches, 0)]


def analytic_metrics(plan: Plan, workload: Workload, cluster: Cluster, cost: CostModel) -> Metrics:
    shapes = analytic_shapes(workload, plan.microbatches)
    sram = plan_counts_sram(plan)
    passes = [stage_pass(plan.model, stage, shapes[0], cluster, cost, sram) for stage in plan.stages]
    later = [stage_pass(plan.model, stage, shapes[-1], cluster, cost, sram) for stage in plan.stages]
    decode = workload.phase == "decode"
    k, mbs = plan.num_stages, plan.microbatches
    sends = []
    for s in range(k):
        if s < k - 1 or decode:
            transfers = boundary_transfers(plan.stages[s], plan.stages[(s + 1) % k], passes[s].output_bytes,
                                           cluster, cost)
            sends.append((boundary_time_s(transfers), transfers))
        else:
            sends.append((0.0, ()))
    occupancy = [(p.duration_s + q.duration_s) / 2 + send
                 for p, q, (send, _) in zip(passes, later, sends, strict=True)]
    cycle_s, bottleneck_s = sum(occupancy), max(occupancy)
    step_s = pipeline.step_s(workload.phase, cycle_s, bottleneck_s, mbs)
    tokens_per_s = workload.tokens_per_iteration / step_s
    stages = []
    for stage, p, q, (send, _) in zip(plan.stages, passes, later, sends, strict=True):
        comp = mbs * (p.compute_s + q.compute_s) / 2
        comm = mbs * ((p.exposed_allreduce_s + q.exposed_allreduce_s) / 2 + send)
        stages.append(StageMetrics(stage.index, stage.devices, comp, comm, max(0.0, step_s - comp - comm)))
    worst = max(range(k), key=lambda s: (occupancy[s], s))
    simulation = SimulationDetails(
        estimator="twin", breakdown=_breakdown((passes[worst], later[worst]), sends[worst][0], mbs, step_s, worst),
        communication=_communication(plan, passes, [t for _, t in sends], mbs, decode, workload.iterations),
        residency=tuple(p.residency.summary(p.stage) for p in passes), sim_params=cost.params.to_dict(),
        cycle_latency_s=cycle_s, bubble_free_step_time_s=mbs * bottleneck_s)
    ttft_s = pipeline.prefill_ttft_s(cycle_s, bottleneck_s, mbs) if not decode else None
    return Metrics(tokens_per_s=tokens_per_s, step_time_s=step_s, tpot_s=step_s if decode else None,
                   ttft_s=ttft_s, microbatches=mbs, plan_label=plan.describe(), stages=tuple(stages),
                   simulation=simulation)


def _communication(plan: Plan, passes: list[StagePass], sends: list[tuple[Transfer, ...]], mbs: int, decode: bool,
                   iterations: int) -> Communication:
    """Per iteration, every microbatch through every stage; totals over the run's iterations."""
    k = plan.num_stages
    collective_bytes = mbs * sum(p.allreduce_bytes_sent * len(s.devices) for p, s in zip(passes, plan.stages,
                                                                                          strict=True))
    p2p_bytes = mbs * sum(t.cost.bytes_sent_per_rank for transfers in sends for t in transfers)
    total = iterations * (collective_bytes + p2p_bytes)
    return Communication(
        collective_events_per_iteration=float(mbs * sum(p.allreduce_count for p in passes)),
        collective_bytes_sent_per_iteration=collective_bytes,
        p2p_transfers_per_iteration=float(mbs * (k - 1)),
        loopback_transfers_per_iteration=float(mbs if decode and k > 1 else 0),
        p2p_messages_per_iteration=float(mbs * sum(len(t) for t in sends)),
        bytes_sent_total=total, bytes_received_total=total)


def _breakdown(pair: tuple[StagePass, StagePass], send_s: float, mbs: int, step_s: float, stage: int) -> Breakdown:
    def mean(name: str) -> float:
        return mbs * (pair[0].total(name) + pair[1].total(name)) / 2

    parts = {
        "compute_s": mean("compute_s"),
        "weights_s": mean("weights_s"),
        "kv_cache_s": mean("kv_s"),
        "activations_s": mean("activations_s"),
        "launch_s": mean("launch_s"),
        "communication_s": mbs * ((pair[0].exposed_allreduce_s + pair[1].exposed_allreduce_s) / 2 + send_s),
    }
    return Breakdown(stage=stage, bubble_s=max(0.0, step_s - sum(parts.values())), **parts)
