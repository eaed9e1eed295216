"""The model as a networkx DiGraph of operators, split for a tensor-parallel degree.

Per layer ``i`` (Megatron-style TP of degree ``t``; norms and residuals are replicated):

    L{i}.attn_norm -> L{i}.qkv (h -> (q + 2kv)/t) -> L{i}.attention (heads/t, kv_heads/t)
      -> L{i}.o_proj (q/t -> h) -> [L{i}.attn_allreduce if t > 1] -> L{i}.attn_residual
      -> L{i}.mlp_norm -> L{i}.gate_up (h -> m*ff/t, m = 2 gated, 1 plain) -> L{i}.act
      -> L{i}.down (ff/t -> h) -> [L{i}.mlp_allreduce if t > 1] -> L{i}.mlp_residual

plus the residual edges ``L{i-1}.mlp_residual -> L{i}.attn_residual`` and
``L{i}.attn_residual -> L{i}.mlp_residual``. Each node carries ``op`` (an :class:`Op`);
costs come from the pure functions in :mod:`topology.ops`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import networkx as nx

from topology.errors import LayerwiseError
from topology.model import ModelSpec
from topology.ops import (
    Op,
    op_activation_bytes,
    op_comm_bytes,
    op_flops,
    op_kv_footprint_bytes,
    op_kv_read_bytes,
    op_kv_write_bytes,
    op_weight_bytes,
)
from topology.workload import TokenShape


def check_tp_degree(model: ModelSpec, tp_degree: int, field: str = "tp") -> None:
    """Raise unless ``tp_degree`` divides the heads, KV heads and MLP width."""
    if tp_degree < 1:
        raise LayerwiseError(field, f"tp={tp_degree} must be >= 1")
    for name in ("num_heads", "num_kv_heads", "mlp_hidden_size"):
        value = getattr(model, name)
        if value % tp_degree:
            raise LayerwiseError(field, f"tp={tp_degree} does not divide {name}={value}")


def layer_ops(model: ModelSpec, layer: int, tp_degree: int) -> list[Op]:
    """The operators of one layer on one device of a TP group, in execution order."""
    check_tp_degree(model, tp_degree)
    t, h, d = tp_degree, model.hidden_size, model.dtype_bytes
    ff_local = model.mlp_hidden_size // t
    prefix = f"L{layer}."
    ops = [
        Op(prefix + "attn_norm", layer, "norm", d, width=h),
        Op(prefix + "qkv", layer, "gemm", d, in_features=h,
           out_features=(model.q_width + 2 * model.kv_width) // t),
        Op(prefix + "attention", layer, "attention", d, heads=model.num_heads // t,
           kv_heads=model.num_kv_heads // t, head_dim=model.head_dim),
        Op(prefix + "o_proj", layer, "gemm", d, in_features=model.q_width // t, out_features=h),
    ]
    if t > 1:
        ops.append(Op(prefix + "attn_allreduce", layer, "allreduce", d, width=h, tp_degree=t))
    ops += [
        Op(prefix + "attn_residual", layer, "residual", d, width=h),
        Op(prefix + "mlp_norm", layer, "norm", d, width=h),
        Op(prefix + "gate_up", layer, "gemm", d, in_features=h,
           out_features=(2 if model.gated_mlp else 1) * ff_local),
        Op(prefix + "act", layer, "activation", d, width=ff_local, gated=model.gated_mlp),
        Op(prefix + "down", layer, "gemm", d, in_features=ff_local, out_features=h),
    ]
    if t > 1:
        ops.append(Op(prefix + "mlp_allreduce", layer, "allreduce", d, width=h, tp_degree=t))
    ops.append(Op(prefix + "mlp_residual", layer, "residual", d, width=h))
    return ops


def build_layer_graph(
    model: ModelSpec, tp_degree: int = 1, layers: range | None = None
) -> nx.DiGraph:
    """Operator graph of ``layers`` (default: all) for one device of a TP group."""
    layer_range = range(model.num_layers) if layers is None else layers
    graph = nx.DiGraph(model=model.name, tp_degree=tp_degree)
    previous_out: str | None = None
    for layer in layer_range:
        ops = layer_ops(model, layer, tp_degree)
        for op in ops:
            graph.add_node(op.name, op=op)
        for a, b in itertools.pairwise(ops):
            graph.add_edge(a.name, b.name, kind="data")
        attn_res, mlp_res = f"L{layer}.attn_residual", f"L{layer}.mlp_residual"
        graph.add_edge(attn_res, mlp_res, kind="residual")
        if previous_out is not None:
            graph.add_edge(previous_out, ops[0].name, kind="data")
            graph.add_edge(previous_out, attn_res, kind="residual")
        previous_out = mlp_res
    return graph


def graph_ops(graph: nx.DiGraph) -> list[Op]:
    """The graph's operators in execution (topological, name-stable) order."""
    return [graph.nodes[name]["op"] for name in nx.lexicographical_topological_sort(
        graph, key=lambda n: (graph.nodes[n]["op"].layer, n))]


@dataclass(frozen=True)
class CostSummary:
    """Totals over a set of operators for one call at one token shape, per device."""

    flops: float
    weight_bytes: int
    activation_bytes: int
    kv_read_bytes: int
    kv_write_bytes: int
    allreduce_payload_bytes: int
    allreduce_count: int
    kernel_count: int

    @property
    def hbm_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes + self.kv_read_bytes + self.kv_write_bytes


def summarize_ops(ops: list[Op], shape: TokenShape) -> CostSummary:
    return CostSummary(
        flops=sum(op_flops(op, shape) for op in ops),
        weight_bytes=sum(op_weight_bytes(op) for op in ops),
        activation_bytes=sum(op_activation_bytes(op, shape) for op in ops),
        kv_read_bytes=sum(op_kv_read_bytes(op, shape) for op in ops),
        kv_write_bytes=sum(op_kv_write_bytes(op, shape) for op in ops),
        allreduce_payload_bytes=sum(op_comm_bytes(op, shape) for op in ops),
        allreduce_count=sum(1 for op in ops if op.kind == "allreduce"),
        kernel_count=sum(1 for op in ops if op.kind != "allreduce"),
    )


def layer_weight_bytes_per_device(model: ModelSpec, tp_degree: int) -> int:
    return sum(op_weight_bytes(op) for op in layer_ops(model, 0, tp_degree))


def layer_kv_bytes_per_device(model: ModelSpec, tp_degree: int, batch: int, capacity_tokens: int) -> int:
    return sum(op_kv_footprint_bytes(op, batch, capacity_tokens) for op in layer_ops(model, 0, tp_degree))
