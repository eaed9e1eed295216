"""Compiled stage passes: what a stage process executes, one flat step per all-reduce and its
compute (pure; no SimPy), cached per stage kind and context length (:class:`PassCache`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from operator import attrgetter

from sim.costs.memo import PriceMemo
from sim.costs.model import CostModel
from sim.costs.residency import plan_counts_sram
from sim.costs.stage import StagePass, Step, stage_pass
from topology.cluster import Cluster
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
