"""The time one serving iteration takes on one replica of a plan (pure cost functions, memoised).

An iteration mixes prefill chunks and decodes (``serving.batch.IterationPlan``). On every stage:

* every operator but attention runs over the iteration's tokens: ``padded_tokens`` for a decode-only
  iteration replayed from a captured CUDA graph (priced with graph launches), its new tokens otherwise
  (eager launches): the stage pass of :func:`sim.costs.stage.stage_pass` at ``TokenShape(T, 1, 1)``,
  all-reduces of a TP stage included;
* attention is per request, in one varlen call per layer, as the executor runs it: the decodes as one
  decode batch over their mean context (the KV bytes it reads are the sum of the contexts), each prefill
  chunk over its prefix plus itself; one launch per layer, so the extra groups add their kernel time only.

Between stages the activations of the T tokens cross each boundary
(:func:`sim.costs.transfers.boundary_transfers`). Once per iteration the host schedules, prepares inputs
and samples: ``SimParams.serving_iteration_host_s``. The total is what ``serving.driver`` takes as the
iteration's duration (a pipeline spends 1/depth of it in each stage).

Contexts are rounded up to ``CONTEXT_STEP_TOKENS`` for the memo (a KV block's worth: the attention time
of a context differs from that of the next multiple of 16 by at most 16 tokens' KV read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise

from serving.batch import DECODE, IterationPlan
from sim.costs.kernels import op_cost
from sim.costs.memo import PriceMemo
from sim.costs.model import CostModel
from sim.costs.stage import stage_ops, stage_pass
from sim.costs.transfers import boundary_time_s, boundary_transfers
from topology.cluster import Cluster
from topology.layer_graph import Op
from topology.model import ModelSpec
from topology.plan import Plan
from topology.workload import TokenShape

CONTEXT_STEP_TOKENS = 16


@dataclass(frozen=True)
class IterationTime:
    """One iteration's time by part (seconds): host, each stage's compute and all-reduces, the boundaries."""

    host_s: float
    stages_s: tuple[float, ...]
    transfers_s: float

    @property
    def total_s(self) -> float:
        return self.host_s + sum(self.stages_s) + self.transfers_s


def _round_up(tokens: int) -> int:
    return max(CONTEXT_STEP_TOKENS, math.ceil(tokens / CONTEXT_STEP_TOKENS) * CONTEXT_STEP_TOKENS)


@dataclass
class IterationPricer:
    """Prices iterations of one plan (``__call__`` gives seconds, :meth:`breakdown` the parts)."""

    model: ModelSpec
    plan: Plan
    cluster: Cluster
    graph_cost: CostModel
    eager_cost: CostModel
    counts_sram: bool = False
    _memos: dict[bool, PriceMemo] = field(default_factory=lambda: {True: PriceMemo(), False: PriceMemo()})
    _dense: dict[tuple[int, int, bool], tuple[float, float]] = field(default_factory=dict)
    _attention: dict[tuple[int, bool, int, int, int], tuple[float, float]] = field(default_factory=dict)
    _transfers: dict[tuple[int, bool], float] = field(default_factory=dict)
    _attention_ops: dict[int, Op] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stage in self.plan.stages:
            ops, _ = stage_ops(self.model, stage)
            self._attention_ops[stage.index] = next(op for op in ops if op.kind == "attention")

    def __call__(self, iteration: IterationPlan) -> float:
        return self.breakdown(iteration).total_s

    def breakdown(self, iteration: IterationPlan) -> IterationTime:
        graphs = iteration.cuda_graph
        tokens = iteration.padded_tokens if graphs else iteration.num_tokens
        decodes = [item.context_tokens for item in iteration.items if item.kind == DECODE]
        chunks = [(item.new_tokens, item.context_tokens) for item in iteration.items if item.kind != DECODE]
        stages = []
        for stage in self.plan.stages:
            dense_s, base_attention_s = self._dense_s(stage.index, tokens, graphs)
            groups: list[tuple[int, int, int]] = []
            if decodes:
                groups.append((len(decodes), 1, _round_up(math.ceil(sum(decodes) / len(decodes)))))
            groups += [(1, new, _round_up(context)) for new, context in chunks]
            attention_s = 0.0
            for index, group in enumerate(groups):
                time_s, launch_s = self._attention_s(stage.index, graphs, group)
                attention_s += time_s if index == 0 else time_s - launch_s  # one varlen call per layer
            stages.append(dense_s + stage.num_layers * (attention_s - base_attention_s))
        host_s = self.graph_cost.params.serving_iteration_host_s
        return IterationTime(host_s=host_s, stages_s=tuple(stages), transfers_s=self._transfers_s(tokens, graphs))

    def _cost(self, graphs: bool) -> CostModel:
        return self.graph_cost if graphs else self.eager_cost

    def _dense_s(self, stage_index: int, tokens: int, graphs: bool) -> tuple[float, float]:
        """The stage pass at T tokens (context 1), and the attention time inside it per layer."""
        key = (stage_index, tokens, graphs)
        known = self._dense.get(key)
        if known is None:
            stage = self.plan.stages[stage_index]
            shape = TokenShape(tokens, 1, 1)
            cost = self._cost(graphs)
            passed = stage_pass(self.model, stage, shape, self.cluster, cost, self.counts_sram,
                                self._memos[graphs], named=False)
            base = op_cost(self._attention_ops[stage_index], shape, cost, 0.0, self._memos[graphs]).time_s
            known = self._dense[key] = (passed.duration_s, base)
        return known

    def _attention_s(self, stage_index: int, graphs: bool, group: tuple[int, int, int]) -> tuple[float, float]:
        key = (stage_index, graphs, *group)
        known = self._attention.get(key)
        if known is None:
            batch, new, context = group
            priced = op_cost(self._attention_ops[stage_index], TokenShape(batch, new, max(context, new)),
                             self._cost(graphs), 0.0, self._memos[graphs])
            known = self._attention[key] = (priced.time_s, priced.launch_s)
        return known

    def _transfers_s(self, tokens: int, graphs: bool) -> float:
        key = (tokens, graphs)
        known = self._transfers.get(key)
        if known is None:
            nbytes = tokens * self.model.hidden_size * self.model.dtype_bytes
            stages = self.plan.stages
            known = self._transfers[key] = sum(
                boundary_time_s(boundary_transfers(a, b, nbytes, self.cluster, self._cost(graphs)))
                for a, b in pairwise(stages))
        return known
