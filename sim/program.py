"""What the event engine executes: stage passes compiled to flat steps, and the routes
between stages (pure; no SimPy)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from operator import attrgetter

from sim.costs.comm import CommCost, p2p_cost
from sim.costs.model import CostModel
from sim.costs.residency import plan_counts_sram
from sim.costs.stage import PriceMemo, StagePass, Step, stage_pass
from sim.fabric import Fabric, Hop
from topology.cluster import Cluster, hop_crosses_nodes
from topology.plan import Plan, Stage
from topology.workload import TokenShape, Workload

# Per-pass totals the engine accumulates for measured iterations (per device of the stage).
PASS_TOTALS = ("compute_s", "weights_s", "kv_s", "activations_s", "launch_s", "flops", "hbm_bytes", "l2_bytes")
_PASS_FIELDS = attrgetter(*PASS_TOTALS)  # one op's PASS_TOTALS fields, as a tuple


@dataclass(frozen=True)
class PassProgram:
    stage_pass: StagePass
    steps: tuple[Step, ...]
    timed_steps: tuple[tuple[float, float, bool, Step], ...]  # (hold_s, compute_s, overlapped, step): the hot loop
    totals: tuple[float, ...]  # PASS_TOTALS, in order
    allreduce_count: int
    allreduce_bytes_sent: float
    uncontended_s: float  # the whole pass when no other traffic can delay its all-reduces
    uncontended_allreduce_s: float  # the part of it in all-reduces no compute hides


@dataclass(frozen=True)
class Transfer:
    """One rank-to-rank message of a stage boundary."""

    src: str
    dst: str
    hops: tuple[Hop, ...]
    cost: CommCost


def compile_pass(stage_pass_: StagePass) -> PassProgram:
    steps = stage_pass_.steps
    uncontended_s = uncontended_allreduce_s = 0.0
    for step in steps:  # what StageProcess._compute adds up step by step when every hold starts at once
        hold_s, compute_s = step.allreduce_s, step.compute_s
        uncontended_s += max(hold_s, compute_s) if step.overlapped else hold_s + compute_s
        uncontended_allreduce_s += max(0.0, hold_s - compute_s) if step.overlapped else hold_s
    return PassProgram(
        stage_pass=stage_pass_,
        steps=steps,
        timed_steps=tuple((step.allreduce_s, step.compute_s, step.overlapped, step) for step in steps),
        totals=_totals(stage_pass_),
        allreduce_count=stage_pass_.allreduce_count,
        allreduce_bytes_sent=stage_pass_.allreduce_bytes_sent,
        uncontended_s=uncontended_s,
        uncontended_allreduce_s=uncontended_allreduce_s,
    )


def _totals(stage_pass_: StagePass) -> tuple[float, ...]:
    """PASS_TOTALS over the pass's operators (each summed in operator order, as StagePass.total does)."""
    columns = list(zip(*map(_PASS_FIELDS, stage_pass_.ops), strict=True))
    return tuple(float(sum(column)) for column in columns) if columns else (0.0,) * len(PASS_TOTALS)


class PassCache:
    """Compiled passes per (stage, context length), keeping only the few contexts in use: a
    growing context compiles each length once and drops it when the run has moved on.

    Stages alike (same layer count, TP degree and spread over nodes) share one compiled pass
    unless ``named`` (a trace needs each stage's own operator names).
    """

    KEEP_CONTEXTS = 4  # per stage: stages work on neighbouring iterations at once

    def __init__(self, plan: Plan, workload: Workload, cluster: Cluster, cost: CostModel, named: bool = False) -> None:
        self._plan, self._workload, self._cluster, self._cost = plan, workload, cluster, cost
        self._named = named
        self._kinds = [self._kind(stage, cluster, named) for stage in plan.stages]
        self._programs: dict[tuple[object, ...], dict[int, PassProgram]] = {kind: {} for kind in self._kinds}
        self._priced = PriceMemo()  # operator and all-reduce prices, shared by every pass compiled here

    @staticmethod
    def _kind(stage: Stage, cluster: Cluster, named: bool) -> tuple[object, ...]:
        per_node = sorted(Counter(cluster.node_of(d) for d in stage.devices).values())
        return (stage.index if named else -1, stage.num_layers, stage.tp_degree, tuple(per_node),
                stage.footprint.weights_bytes)

    def shape(self, iteration: int) -> TokenShape:
        return self._workload.token_shape(self._plan.microbatches, iteration)

    def context_of(self, iteration: int) -> int:
        w = self._workload
        if w.phase == "prefill":
            return w.prompt_len
        return w.context_len + (iteration if w.context_growth == "grow" else 0)

    def get(self, stage: int, iteration: int) -> PassProgram:
        programs = self._programs[self._kinds[stage]]
        context = self.context_of(iteration)
        program = programs.get(context)
        if program is None:
            plan = self._plan
            program = compile_pass(stage_pass(plan.model, plan.stages[stage], self.shape(iteration), self._cluster,
                                              self._cost, plan_counts_sram(plan), self._priced, self._named))
            if len(programs) >= self.KEEP_CONTEXTS:
                del programs[min(programs)]  # contexts only grow: the smallest is done with
            programs[context] = program
        return program


def boundary_transfers(src: Stage, dst: Stage, nbytes: int, cluster: Cluster, cost: CostModel) -> tuple[Transfer, ...]:
    """Every receiving rank ``j`` gets the activation from sending rank ``j mod t_src`` (one copy each)."""
    transfers = []
    for j, b in enumerate(dst.devices):
        a = src.devices[j % src.tp_degree]
        if a == b:
            continue
        hops = cluster.route(a, b)
        transfers.append(Transfer(a, b, hops, p2p_cost(nbytes, hops, cost)))
    return tuple(transfers)


def boundary_time_s(transfers: tuple[Transfer, ...]) -> float:
    """How long a stage is blocked sending one activation when no other traffic contends: its
    rank-to-rank messages reserve their hops in order (a fan-out waits on the sender's port)."""
    fabric = Fabric()
    return max((fabric.hold(t.hops, 0.0, t.cost.serialization_s) + t.cost.time_s for t in transfers), default=0.0)


def private_stages(ports: list[tuple[Hop, ...]], transfers: list[tuple[Transfer, ...]]) -> list[bool]:
    """Per stage: whether no other stage ever holds a hop its all-reduces or its sends hold.

    Such a stage books those hops one use after another (a step ends after its all-reduce's hold;
    a send ends ``latency`` after its last hold), so every hold starts at once: its pass runs as
    one step of :attr:`PassProgram.uncontended_s` and its send as one of
    :func:`boundary_time_s`, exactly (up to rounding)."""
    owners: dict[Hop, set[int]] = {}
    for s, (own, sends) in enumerate(zip(ports, transfers, strict=True)):
        for hop in (*own, *(hop for t in sends for hop in t.hops)):
            owners.setdefault(hop, set()).add(s)
    shared = {hop for hop, who in owners.items() if len(who) > 1}
    return [shared.isdisjoint(own) and all(shared.isdisjoint(t.hops) for t in sends)
            for own, sends in zip(ports, transfers, strict=True)]


def group_ports(stage: Stage, cluster: Cluster) -> tuple[Hop, ...]:
    """Both directions of every link of every device of the stage (what a collective holds)."""
    ports: list[Hop] = []
    for device in stage.devices:
        for neighbour in sorted(cluster.graph.neighbors(device)):
            ports += [(device, neighbour), (neighbour, device)]
    if cluster.same_node(stage.devices):
        ports = [p for p in ports if not hop_crosses_nodes(p)]
    return tuple(ports)
