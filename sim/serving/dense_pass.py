"""One stage pass at ``T`` tokens (context 1) as a duration only: what :func:`sim.costs.stage.stage_pass`
gives as ``duration_s``, worked out without the per-kernel records a trace needs.

The serving pricer asks for the pass at every distinct token count an iteration has (thousands in a
long run), and only for its duration. ``stage_pass`` builds a record per kernel of every layer (and,
in eager mode, a copy of each with its exposed launch); here the same arithmetic runs on floats:

* each operator's price comes from :func:`sim.costs.kernels.op_cost` through the shared memo, under
  the key ``stage_pass`` uses, so alike operators of different layers are priced once;
* the L2 residency reads bytes that are all linear in the tokens at context 1 (activations, KV read
  and written: integers), so the streamed bytes are the tokens times those of one token;
* an eager compute run adds, kernel after kernel, the time the host's issue order leaves
  (:func:`sim.costs.kernels.overlap_eager_launches`: kernel ``i`` ends at
  ``max(max(end_{i-1}, (issued_before_i + 1) h) + kernel_i, issued_after_i h)``), in the same order
  with the same float operations, so the sum is bit for bit the one ``stage_pass`` gives;
* all-reduces, their straggler wait and the pairing of an all-reduce with the compute run after it
  (overlapped or in sequence) are those of :func:`sim.costs.stage.stage_pass` and ``Step``.

``tests/sim/test_serving_pricing.py`` holds the two equal (every plan kind: TP, PP, graphs, eager).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.costs.comm import CommCost, allreduce_cost
from sim.costs.kernels import OpCost, op_cost
from sim.costs.memo import OpKey, PriceMemo, op_key
from sim.costs.model import CostModel
from sim.costs.residency import weight_hit_fraction
from sim.costs.stage import ALLREDUCE, pass_layout, stage_ops, stage_residency
from topology.cluster import Cluster
from topology.model import ModelSpec
from topology.ops import Op, op_comm_bytes
from topology.plan import Stage
from topology.workload import TokenShape


@dataclass
class DensePass:
    """The pass duration of one stage under one cost model, by token count (memoised here; operator
    prices and all-reduces in the shared ``memo``)."""

    model: ModelSpec
    stage: Stage
    cluster: Cluster
    cost: CostModel
    sram_counted: bool
    memo: PriceMemo
    _known: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ops, _ = stage_ops(self.model, self.stage)
        self._layout = pass_layout(self.model, self.stage.layers, self.stage.tp_degree)
        # every byte the residency rule counts is linear in the tokens at context 1 (integers: exact)
        one = stage_residency(self.model, self.stage, ops, TokenShape(1, 1, 1), self.cluster, self.cost,
                              self.sram_counted)
        self._weights_bytes, self._streamed_bytes_per_token = one.weights_bytes, one.streamed_bytes_per_pass
        self._capacity_bytes = one.capacity_bytes
        # each compute run as its distinct operators (alike layers share one) and their order
        self._runs: list[tuple[dict[OpKey, Op], list[OpKey]]] = []
        for part in self._layout:
            keys = [op_key(op) for op in part.ops]
            self._runs.append((dict(zip(keys, part.ops, strict=True)), keys))

    def duration_s(self, tokens: int) -> float:
        """``stage_pass(model, stage, TokenShape(tokens, 1, 1), ...).duration_s``, bit for bit."""
        known = self._known.get(tokens)
        if known is None:
            known = self._known[tokens] = self._pass_s(tokens)
        return known

    def _pass_s(self, tokens: int) -> float:
        shape = TokenShape(tokens, 1, 1)
        hit = weight_hit_fraction(self._weights_bytes, tokens * self._streamed_bytes_per_token, self._capacity_bytes)
        straggler = self.cost.params.tp_straggler_fraction
        total = 0.0
        pending_allreduce: float | None = None  # an all-reduce waiting for the compute run after it
        last_compute_s: float | None = None  # the previous segment's duration if it was a compute run
        for part, run in zip(self._layout, self._runs, strict=True):
            if part.kind == ALLREDUCE:
                comm = self._allreduce(part.ops[0], shape)
                if straggler and last_compute_s is not None and comm.time_s > 0.0:
                    comm = CommCost(comm.latency_s + straggler * last_compute_s, comm.serialization_s,
                                    comm.bytes_sent_per_rank)
                if pending_allreduce is not None:  # two all-reduces in a row: the first is a step alone
                    total += pending_allreduce
                pending_allreduce, last_compute_s = comm.time_s, None
                continue
            compute_s = self._compute_s(run, shape, hit)
            if pending_allreduce is None:
                total += compute_s
            elif part.overlaps:
                total += max(pending_allreduce, compute_s)
            else:
                total += pending_allreduce + compute_s
            pending_allreduce, last_compute_s = None, compute_s
        if pending_allreduce is not None:
            total += pending_allreduce
        return total

    def _allreduce(self, op: Op, shape: TokenShape) -> CommCost:
        key = (op_comm_bytes(op, shape), self.stage.devices)
        comm: CommCost | None = self.memo.allreduces.get(key)
        if comm is None:
            comm = self.memo.allreduces[key] = allreduce_cost(*key, self.cluster, self.cost)
        return comm

    def _priced(self, key: OpKey, op: Op, shape: TokenShape, hit: float) -> OpCost:
        """``op_cost`` through the shared memo, under the key ``stage_pass`` uses."""
        reads = shape if op.kind == "attention" else shape.tokens
        memo_key = (key, reads, hit)
        known: OpCost | None = self.memo.ops.get(memo_key)
        if known is None:
            known = self.memo.ops[memo_key] = op_cost(op, shape, self.cost, hit, self.memo)
        return known

    def _compute_s(self, run: tuple[dict[OpKey, Op], list[OpKey]], shape: TokenShape, hit: float) -> float:
        distinct, order = run
        by_key = {key: self._priced(key, op, shape, hit) for key, op in distinct.items()}
        priced = [by_key[key] for key in order]
        if self.cost.cuda_graphs:
            return sum(o.time_s for o in priced)
        host_launch_s = self.cost.launch_overhead_s
        total = 0.0
        gpu_end_s = 0.0
        issued = 0
        for op in priced:  # overlap_eager_launches, summed as Segment.duration_s sums its kernels
            kernel_s = op.time_s - op.launch_s
            first_s = (issued + 1) * host_launch_s
            issued += op.kernels
            end_s = max(max(gpu_end_s, first_s) + kernel_s, issued * host_launch_s)
            wait_s = end_s - gpu_end_s - kernel_s
            gpu_end_s = end_s
            total += kernel_s + wait_s
        return total
