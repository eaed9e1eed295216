"""One microbatch's pass through one stage, as segments between collectives, and its steps (pure).

A pass is the stage's operators, in the run order of the stage's layer graph
(:func:`topology.layer_graph.stage_graph_ops`), cut at every all-reduce: compute segment,
all-reduce, compute segment, ... A compute segment that does not depend on the all-reduce
before it (the other branch of a parallel block) runs while that all-reduce is in flight.

A :class:`Step` pairs each all-reduce with the compute segment after it: in sequence (the compute
needs the reduced tensor) or overlapped (it does not); the step lasts ``hold + compute`` or
``max(hold, compute)``. The event simulation runs one timeout per step; the twin adds the steps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.costs.comm import CommCost, allreduce_cost
from sim.costs.kernels import OpCost, op_cost, overlap_eager_launches
from sim.costs.model import CostModel
from sim.costs.residency import Residency, residency, residency_capacity_bytes
from topology.cluster import Cluster
from topology.layer_graph import stage_graph_ops
from topology.model import ModelSpec
from topology.ops import Op, op_activation_bytes, op_comm_bytes, op_kv_read_bytes, op_kv_write_bytes
from topology.plan import Stage
from topology.workload import TokenShape

COMPUTE = "compute"
ALLREDUCE = "allreduce"


@dataclass(frozen=True)
class Segment:
    kind: str  # COMPUTE or ALLREDUCE
    label: str
    duration_s: float  # compute: sum of kernel times; all-reduce: its uncontended time
    ops: tuple[OpCost, ...] = ()
    comm: CommCost | None = None
    overlaps_collective: bool = False  # compute only: independent of the all-reduce before it


@dataclass(frozen=True)
class Step:
    """One timeout of the engine: an optional all-reduce (a link hold requested when the step
    starts) and the compute segment after it, in sequence or, when independent, overlapped."""

    allreduce: Segment | None
    compute: Segment | None

    @property
    def allreduce_s(self) -> float:
        return self.allreduce.duration_s if self.allreduce is not None else 0.0

    @property
    def compute_s(self) -> float:
        return self.compute.duration_s if self.compute is not None else 0.0

    @property
    def overlapped(self) -> bool:
        return self.allreduce is not None and self.compute is not None and self.compute.overlaps_collective

    @property
    def duration_s(self) -> float:
        """Uncontended: the hold and the compute, one after the other or side by side."""
        if self.overlapped:
            return max(self.allreduce_s, self.compute_s)
        return self.allreduce_s + self.compute_s


def compile_steps(segments: tuple[Segment, ...]) -> tuple[Step, ...]:
    """Pair every all-reduce with the compute segment after it."""
    steps: list[Step] = []
    pending: Segment | None = None
    for segment in segments:
        if segment.kind == COMPUTE:
            steps.append(Step(pending, segment))
            pending = None
        else:
            if pending is not None:
                steps.append(Step(pending, None))
            pending = segment
    if pending is not None:
        steps.append(Step(pending, None))
    return tuple(steps)


@dataclass(frozen=True)
class StagePass:
    """Per device of the stage, for one microbatch at one token shape."""

    stage: int
    segments: tuple[Segment, ...]
    residency: Residency
    output_bytes: int  # activation one rank sends to the next stage

    @property
    def steps(self) -> tuple[Step, ...]:
        return compile_steps(self.segments)

    @property
    def duration_s(self) -> float:
        """The pass without contention: its steps end to end (overlapped all-reduces hidden)."""
        return sum(step.duration_s for step in self.steps)

    @property
    def compute_s(self) -> float:
        return sum(s.duration_s for s in self.segments if s.kind == COMPUTE)

    @property
    def exposed_allreduce_s(self) -> float:
        """All-reduce time no compute hides (what the pass spends in collectives alone)."""
        return self.duration_s - self.compute_s

    @property
    def allreduce_s(self) -> float:
        return sum(s.duration_s for s in self.segments if s.kind == ALLREDUCE)

    @property
    def allreduce_count(self) -> int:
        return sum(1 for s in self.segments if s.kind == ALLREDUCE)

    @property
    def allreduce_bytes_sent(self) -> float:
        return sum(s.comm.bytes_sent_per_rank for s in self.segments if s.comm is not None)

    @property
    def ops(self) -> tuple[OpCost, ...]:
        return tuple(op for s in self.segments for op in s.ops)

    def total(self, attribute: str) -> float:
        """Sum of one OpCost field (``flops``, ``hbm_bytes``, ``kv_s``, ...) over the pass."""
        return float(sum(getattr(op, attribute) for op in self.ops))


def stage_ops(model: ModelSpec, stage: Stage) -> tuple[list[Op], dict[str, tuple[str, ...]]]:
    """The stage's operators in run order, and each one's inputs (from its layer graph)."""
    return stage_graph_ops(model, stage.layers, stage.tp_degree)


PriceMemo = dict[tuple[object, ...], OpCost]


def _priced(op: Op, shape: TokenShape, cost: CostModel, hit_fraction: float, priced: PriceMemo,
            named: bool = True) -> OpCost:
    """``op_cost`` of an operator, reusing the price of an identical one (another layer's, or another
    context length's where only attention reads the context)."""
    reads = shape if op.kind == "attention" else shape.tokens
    key = (op.kind, op.dtype_bytes, op.in_features, op.out_features, op.width, op.heads, op.kv_heads, op.head_dim,
           op.gated, op.terms, reads, hit_fraction)
    known = priced.get(key)
    if known is None:
        known = priced[key] = op_cost(op, shape, cost, hit_fraction)
    return known if not named or known.name == op.name else replace(known, name=op.name)


def stage_residency(stage: Stage, ops: list[Op], shape: TokenShape, cluster: Cluster, cost: CostModel,
                    sram_counted: bool) -> Residency:
    weights = stage.footprint.weights_bytes
    streamed = sum(op_activation_bytes(op, shape) + op_kv_read_bytes(op, shape) + op_kv_write_bytes(op, shape)
                   for op in ops)
    capacity = residency_capacity_bytes(cost.params.l2_usable_bytes, cluster.gpu.sram_bytes, sram_counted)
    return residency(weights, streamed, capacity, sram_counted)


def stage_pass(model: ModelSpec, stage: Stage, shape: TokenShape, cluster: Cluster, cost: CostModel,
               sram_counted: bool = False, priced: PriceMemo | None = None, named: bool = True) -> StagePass:
    """One microbatch pass of ``stage`` (``sram_counted``: the plan's cache-fit counted shared memory;
    ``priced``: a memo of operator prices to share between passes of one cost model; ``named``
    False: alike kernels of different layers share one price record, named after the first)."""
    ops, inputs = stage_ops(model, stage)
    res = stage_residency(stage, ops, shape, cluster, cost, sram_counted)
    segments: list[Segment] = []
    pending: list[OpCost] = []
    priced = {} if priced is None else priced  # every layer repeats the same kernels: price each once
    collective: str | None = None  # the last all-reduce, while no compute has waited for it
    waits: set[str] = set()  # ops that need that all-reduce (directly or through another op)
    independent = False  # the open compute segment runs beside that all-reduce

    def close_compute() -> None:
        if pending:
            label = pending[0].name if len(pending) == 1 else f"{pending[0].name}..{pending[-1].name}"
            kernels = tuple(pending) if cost.cuda_graphs else overlap_eager_launches(pending, cost.launch_overhead_s)
            segments.append(Segment(COMPUTE, label, sum(o.time_s for o in kernels), kernels,
                                    overlaps_collective=independent))
            pending.clear()

    for op in ops:
        needs_collective = collective is not None and any(i == collective or i in waits for i in inputs[op.name])
        if needs_collective:
            waits.add(op.name)
        if op.kind == "allreduce":
            close_compute()
            comm = allreduce_cost(op_comm_bytes(op, shape), stage.devices, cluster, cost)
            segments.append(Segment(ALLREDUCE, op.name, comm.time_s, comm=comm))
            collective, waits, independent = op.name, set(), True
            continue
        if needs_collective and independent:  # the first op that waits: what follows runs after the all-reduce
            close_compute()
            independent = False
        pending.append(_priced(op, shape, cost, res.hit_fraction, priced, named))
    close_compute()
    output_bytes = shape.tokens * model.hidden_size * model.dtype_bytes
    return StagePass(stage=stage.index, segments=tuple(segments), residency=res, output_bytes=output_bytes)
