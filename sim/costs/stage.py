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
from functools import cache
from itertools import repeat

from sim.costs.comm import CommCost, allreduce_cost
from sim.costs.kernels import OpCost, op_cost, overlap_eager_launches
from sim.costs.memo import PriceMemo, op_key
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


def _priced(op: Op, shape: TokenShape, cost: CostModel, hit_fraction: float, priced: PriceMemo,
            named: bool = True) -> OpCost:
    """``op_cost`` of an operator, reusing the price of an identical one (another layer's, or another
    context length's where only attention reads the context)."""
    reads = shape if op.kind == "attention" else shape.tokens
    key = (op_key(op), reads, hit_fraction)
    known: OpCost | None = priced.ops.get(key)
    if known is None:
        known = priced.ops[key] = op_cost(op, shape, cost, hit_fraction, priced)
    return known if not named or known.name == op.name else replace(known, name=op.name)


def stage_residency(model: ModelSpec, stage: Stage, ops: list[Op], shape: TokenShape, cluster: Cluster,
                    cost: CostModel, sram_counted: bool, priced: PriceMemo | None = None) -> Residency:
    weights = stage.footprint.weights_bytes
    # activations depend on the tokens, not the context; the model's layers are alike, so on the layer count
    key = (model, stage.num_layers, stage.tp_degree, shape.tokens)
    activations = priced.activations.get(key) if priced is not None else None
    if activations is None:
        activations = sum(map(op_activation_bytes, ops, repeat(shape)))
        if priced is not None:
            priced.activations[key] = activations
    kv_ops = [op for op in ops if op.kind == "attention"]  # the only ops with KV traffic (exact: integers)
    streamed = activations + sum(op_kv_read_bytes(op, shape) + op_kv_write_bytes(op, shape) for op in kv_ops)
    capacity = residency_capacity_bytes(cost.params.l2_usable_bytes, cluster.gpu.sram_bytes, sram_counted)
    return residency(weights, streamed, capacity, sram_counted)


def _compute_segment(part: tuple[Op, ...], overlaps: bool, shape: TokenShape, cost: CostModel, hit_fraction: float,
                     priced: PriceMemo, named: bool) -> Segment:
    pending = [_priced(op, shape, cost, hit_fraction, priced, named) for op in part]
    label = pending[0].name if len(pending) == 1 else f"{pending[0].name}..{pending[-1].name}"
    kernels = tuple(pending) if cost.cuda_graphs else overlap_eager_launches(pending, cost.launch_overhead_s)
    return Segment(COMPUTE, label, sum(o.time_s for o in kernels), kernels, overlaps_collective=overlaps)


@dataclass(frozen=True)
class LayoutPart:
    """A piece of a stage's pass: a compute run or one all-reduce, whatever the token shape."""

    kind: str  # COMPUTE or ALLREDUCE
    ops: tuple[Op, ...]
    overlaps: bool  # a compute run independent of the all-reduce before it
    shapes: tuple[object, ...]  # its operators' shapes (memo.op_key), in order: the run's price key
    names: tuple[str, ...]  # its operators' names (part of the key where a trace needs each one's own)


@cache
def pass_layout(model: ModelSpec, layers: range, tp_degree: int) -> tuple[LayoutPart, ...]:
    """A stage's operators cut into segments, whatever the token shape: compute runs, each
    all-reduce alone, and whether a compute run is independent of the all-reduce before it (it
    needs neither that all-reduce's output nor anything computed from it). Memoized: a growing
    context re-prices the same layout at every length."""
    ops, inputs = stage_graph_ops(model, layers, tp_degree)
    parts: list[LayoutPart] = []
    pending: list[Op] = []
    collective: str | None = None  # the last all-reduce, while no compute has waited for it
    waits: set[str] = set()  # ops that need that all-reduce (directly or through another op)
    independent = False  # the open compute run goes beside that all-reduce

    def close_compute() -> None:
        if pending:
            parts.append(_part(COMPUTE, tuple(pending), independent))
            pending.clear()

    for op in ops:
        needs_collective = collective is not None and any(i == collective or i in waits for i in inputs[op.name])
        if needs_collective:
            waits.add(op.name)
        if op.kind == "allreduce":
            close_compute()
            parts.append(_part(ALLREDUCE, (op,), False))
            collective, waits, independent = op.name, set(), True
            continue
        if needs_collective and independent:  # the first op that waits: what follows runs after the all-reduce
            close_compute()
            independent = False
        pending.append(op)
    close_compute()
    return tuple(parts)


def _part(kind: str, ops: tuple[Op, ...], overlaps: bool) -> LayoutPart:
    return LayoutPart(kind, ops, overlaps, tuple(op_key(op) for op in ops), tuple(op.name for op in ops))


def stage_pass(model: ModelSpec, stage: Stage, shape: TokenShape, cluster: Cluster, cost: CostModel,
               sram_counted: bool = False, priced: PriceMemo | None = None, named: bool = True) -> StagePass:
    """One microbatch pass of ``stage`` (``sram_counted``: the plan's cache-fit counted shared memory;
    ``priced``: a memo of operator prices to share between passes of one cost model; ``named``
    False: alike kernels of different layers share one price record, named after the first)."""
    ops, _ = stage_ops(model, stage)
    priced = PriceMemo() if priced is None else priced  # every layer repeats the same kernels: price each once
    res = stage_residency(model, stage, ops, shape, cluster, cost, sram_counted, priced)
    segments: list[Segment] = []
    straggler = cost.params.tp_straggler_fraction
    for part in pass_layout(model, stage.layers, stage.tp_degree):
        if part.kind == ALLREDUCE:
            key = (op_comm_bytes(part.ops[0], shape), stage.devices)
            comm: CommCost | None = priced.allreduces.get(key)
            if comm is None:
                comm = priced.allreduces[key] = allreduce_cost(*key, cluster, cost)
            if straggler and segments and segments[-1].kind == COMPUTE and comm.time_s > 0.0:
                # the ranks do not finish the compute before it together: it waits for the slowest
                comm = replace(comm, latency_s=comm.latency_s + straggler * segments[-1].duration_s)
            segments.append(Segment(ALLREDUCE, part.ops[0].name, comm.time_s, comm=comm))
            continue
        run_key = (part.shapes, part.names if named else None, part.overlaps, shape.tokens, res.hit_fraction)
        segment: Segment | None = priced.runs.get(run_key)
        if segment is None:
            segment = _compute_segment(part.ops, part.overlaps, shape, cost, res.hit_fraction, priced, named)
            if all(op.kind != "attention" for op in part.ops):
                priced.runs[run_key] = segment
        segments.append(segment)
    output_bytes = shape.tokens * model.hidden_size * model.dtype_bytes
    return StagePass(stage=stage.index, segments=tuple(segments), residency=res, output_bytes=output_bytes)
