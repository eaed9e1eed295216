"""One microbatch's pass through one stage, as segments between collectives (pure).

A pass is the stage's operators (``topology.layer_graph.layer_ops`` for each of its layers,
at its TP degree) cut at every all-reduce: compute segment, all-reduce, compute segment, ...
The event simulation runs one timeout per compute segment and one link hold per all-reduce.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.costs.comm import CommCost, allreduce_cost
from sim.costs.kernels import OpCost, op_cost, overlap_eager_launches
from sim.costs.model import CostModel
from sim.costs.residency import Residency, residency, residency_capacity_bytes
from topology.cluster import Cluster
from topology.layer_graph import layer_ops
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


@dataclass(frozen=True)
class StagePass:
    """Per device of the stage, for one microbatch at one token shape."""

    stage: int
    segments: tuple[Segment, ...]
    residency: Residency
    output_bytes: int  # activation one rank sends to the next stage

    @property
    def compute_s(self) -> float:
        return sum(s.duration_s for s in self.segments if s.kind == COMPUTE)

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


def stage_ops(model: ModelSpec, stage: Stage) -> list[Op]:
    return [op for layer in stage.layers for op in layer_ops(model, layer, stage.tp_degree)]


def stage_residency(stage: Stage, ops: list[Op], shape: TokenShape, cluster: Cluster, cost: CostModel,
                    sram_counted: bool) -> Residency:
    weights = stage.footprint.weights_bytes
    streamed = sum(op_activation_bytes(op, shape) + op_kv_read_bytes(op, shape) + op_kv_write_bytes(op, shape)
                   for op in ops)
    capacity = residency_capacity_bytes(cost.params.l2_usable_bytes, cluster.gpu.sram_bytes, sram_counted)
    return residency(weights, streamed, capacity, sram_counted)


def stage_pass(model: ModelSpec, stage: Stage, shape: TokenShape, cluster: Cluster, cost: CostModel,
               sram_counted: bool = False) -> StagePass:
    """One microbatch pass of ``stage`` (``sram_counted``: the plan's cache-fit counted shared memory)."""
    ops = stage_ops(model, stage)
    res = stage_residency(stage, ops, shape, cluster, cost, sram_counted)
    segments: list[Segment] = []
    pending: list[OpCost] = []

    def close_compute() -> None:
        if pending:
            label = pending[0].name if len(pending) == 1 else f"{pending[0].name}..{pending[-1].name}"
            kernels = tuple(pending) if cost.cuda_graphs else overlap_eager_launches(pending, cost.launch_overhead_s)
            segments.append(Segment(COMPUTE, label, sum(o.time_s for o in kernels), kernels))
            pending.clear()

    for op in ops:
        if op.kind == "allreduce":
            close_compute()
            comm = allreduce_cost(op_comm_bytes(op, shape), stage.devices, cluster, cost)
            segments.append(Segment(ALLREDUCE, op.name, comm.time_s, comm=comm))
        else:
            pending.append(op_cost(op, shape, cost, res.hit_fraction))
    close_compute()
    output_bytes = shape.tokens * model.hidden_size * model.dtype_bytes
    return StagePass(stage=stage.index, segments=tuple(segments), residency=res, output_bytes=output_bytes)
