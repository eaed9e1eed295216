"""The model as a networkx DiGraph of operators, split for a tensor-parallel degree: the one
representation of a model that partitioners, footprints, the simulator and the search read.

A sequential block (Llama-style; Megatron TP of degree ``t``; norms and residuals replicated)::

    in -> attn_norm -> qkv (h -> (q + 2kv)/t) -> attention (heads/t, kv_heads/t) -> o_proj (q/t -> h)
       -> [attn_allreduce if t > 1] -> attn_residual (+ in)
       -> mlp_norm -> gate_up (h -> m*ff/t; m = 2 gated, 1 plain) -> act -> down (ff/t -> h)
       -> [mlp_allreduce if t > 1] -> mlp_residual (+ attn_residual)

A parallel block (GPT-J / PaLM style: attention and MLP read one normed input, as independent
branches, each row-parallel output reduced on its own, and one residual adds both)::

    in -> norm -> qkv -> attention -> o_proj -> [attn_allreduce] --+
              \\-> gate_up -> act -> down -> [mlp_allreduce] ------+-> residual (in + attn + mlp)

Node names are ``L{i}.{role}``; each node carries ``op`` (an :class:`~topology.ops.Op`) and
``order`` (its place in the order the layer is written above), and edges carry ``kind``
(``data`` or ``residual``). :func:`graph_ops` is the one topological order everything runs in
(by ``order``, so a parallel block runs its attention branch, then its MLP branch); a branch
that does not depend on a collective may run while that collective is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import networkx as nx

from topology.model import ModelSpec, check_tp_degree

__all__ = ["check_tp_degree"]  # re-exported: the rule itself lives in topology.model
import itertools

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

Edge = tuple[str, str, str]  # (from role, to role, kind)


def _attention_ops(model: ModelSpec, t: int) -> dict[str, Op]:
    h, d = model.hidden_size, model.dtype_bytes
    return {
        "qkv": Op("qkv", 0, "gemm", d, in_features=h, out_features=(model.q_width + 2 * model.kv_width) // t),
        "attention": Op("attention", 0, "attention", d, heads=model.num_heads // t, kv_heads=model.num_kv_heads // t,
                        head_dim=model.head_dim),
        "o_proj": Op("o_proj", 0, "gemm", d, in_features=model.q_width // t, out_features=h),
    }


def _mlp_ops(model: ModelSpec, t: int) -> dict[str, Op]:
    h, d, ff = model.hidden_size, model.dtype_bytes, model.mlp_hidden_size // t
    return {
        "gate_up": Op("gate_up", 0, "gemm", d, in_features=h, out_features=(2 if model.gated_mlp else 1) * ff),
        "act": Op("act", 0, "activation", d, width=ff, gated=model.gated_mlp),
        "down": Op("down", 0, "gemm", d, in_features=ff, out_features=h),
    }


@dataclass(frozen=True)
class LayerTemplate:
    """One layer's operators (roles in graph order) and edges, on one device of a TP group."""

    ops: tuple[tuple[str, Op], ...]  # (role, op) in the order the layer is written
    edges: tuple[Edge, ...]
    entry: str  # the role that reads the layer's input
    exit: str  # the role whose output is the layer's output
    input_readers: tuple[str, ...]  # roles that read the layer's input (the first norm, the residual)

    @property
    def weight_bytes(self) -> int:
        return sum(op_weight_bytes(op) for _, op in self.ops)

    def kv_footprint_bytes(self, batch: int, capacity_tokens: int) -> int:
        return sum(op_kv_footprint_bytes(op, batch, capacity_tokens) for _, op in self.ops)

    @property
    def widest_gemm_features(self) -> int:
        """in + out features of the widest GEMM (its activations in flight)."""
        return max((op.in_features + op.out_features for _, op in self.ops if op.kind == "gemm"), default=0)


@cache
def layer_template(model: ModelSpec, tp_degree: int) -> LayerTemplate:
    """A layer of ``model`` at TP ``tp_degree`` (the graph of one layer; see the module docstring)."""
    check_tp_degree(model, tp_degree)
    t, h, d = tp_degree, model.hidden_size, model.dtype_bytes
    reduce = t > 1
    if model.block == "sequential":
        roles = {"attn_norm": Op("attn_norm", 0, "norm", d, width=h), **_attention_ops(model, t)}
        chain = ["attn_norm", "qkv", "attention", "o_proj"]
        if reduce:
            roles["attn_allreduce"] = Op("attn_allreduce", 0, "allreduce", d, width=h, tp_degree=t)
            chain.append("attn_allreduce")
        roles["attn_residual"] = Op("attn_residual", 0, "residual", d, width=h)
        roles["mlp_norm"] = Op("mlp_norm", 0, "norm", d, width=h)
        roles.update(_mlp_ops(model, t))
        chain += ["attn_residual", "mlp_norm", "gate_up", "act", "down"]
        if reduce:
            roles["mlp_allreduce"] = Op("mlp_allreduce", 0, "allreduce", d, width=h, tp_degree=t)
            chain.append("mlp_allreduce")
        roles["mlp_residual"] = Op("mlp_residual", 0, "residual", d, width=h)
        chain.append("mlp_residual")
        edges = [(a, b, "data") for a, b in itertools.pairwise(chain)]
        edges.append(("attn_residual", "mlp_residual", "residual"))
        return LayerTemplate(tuple(roles.items()), tuple(edges), "attn_norm", "mlp_residual",
                             ("attn_norm", "attn_residual"))
    attention, mlp = ["qkv", "attention", "o_proj"], ["gate_up", "act", "down"]
    roles = {"norm": Op("norm", 0, "norm", d, width=h), **_attention_ops(model, t)}
    if reduce:
        roles["attn_allreduce"] = Op("attn_allreduce", 0, "allreduce", d, width=h, tp_degree=t)
        attention.append("attn_allreduce")
    roles.update(_mlp_ops(model, t))
    if reduce:
        roles["mlp_allreduce"] = Op("mlp_allreduce", 0, "allreduce", d, width=h, tp_degree=t)
        mlp.append("mlp_allreduce")
    roles["residual"] = Op("residual", 0, "residual", d, width=h, terms=3)
    edges = [("norm", attention[0], "data"), ("norm", mlp[0], "data")]
    edges += [(a, b, "data") for branch in (attention, mlp) for a, b in itertools.pairwise(branch)]
    edges += [(attention[-1], "residual", "data"), (mlp[-1], "residual", "data")]
    return LayerTemplate(tuple(roles.items()), tuple(edges), "norm", "residual", ("norm", "residual"))


def build_layer_graph(model: ModelSpec, tp_degree: int = 1, layers: range | None = None) -> nx.DiGraph:
    """Operator graph of ``layers`` (default: all) for one device of a TP group."""
    template = layer_template(model, tp_degree)
    layer_range = range(model.num_layers) if layers is None else layers
    graph = nx.DiGraph(model=model.name, tp_degree=tp_degree)
    order = 0
    previous_exit: str | None = None
    for layer in layer_range:
        prefix = f"L{layer}."
        for role, op in template.ops:
            graph.add_node(prefix + role, op=_named(op, layer, prefix + role), order=order)
            order += 1
        for a, b, kind in template.edges:
            graph.add_edge(prefix + a, prefix + b, kind=kind)
        if previous_exit is not None:
            graph.add_edge(previous_exit, prefix + template.entry, kind="data")
            for reader in template.input_readers:
                if reader != template.entry:
                    graph.add_edge(previous_exit, prefix + reader, kind="residual")
        previous_exit = prefix + template.exit
    return graph


def _named(op: Op, layer: int, name: str) -> Op:
    return Op(name, layer, op.kind, op.dtype_bytes, op.in_features, op.out_features, op.width, op.heads,
              op.kv_heads, op.head_dim, op.gated, op.tp_degree, op.terms)


def graph_ops(graph: nx.DiGraph) -> list[Op]:
    """The graph's operators in the order they run: the one topological order (by ``order``)."""
    return [graph.nodes[name]["op"] for name in nx.lexicographical_topological_sort(
        graph, key=lambda n: graph.nodes[n]["order"])]


def layer_ops(model: ModelSpec, layer: int, tp_degree: int) -> list[Op]:
    """One layer's operators in run order (its graph's topological order)."""
    return graph_ops(build_layer_graph(model, tp_degree, range(layer, layer + 1)))


def graph_predecessors(graph: nx.DiGraph) -> dict[str, tuple[str, ...]]:
    """Each operator's direct inputs (by name)."""
    return {name: tuple(graph.predecessors(name)) for name in graph.nodes}


@cache
def stage_graph_ops(model: ModelSpec, layers: range, tp_degree: int) -> tuple[list[Op], dict[str, tuple[str, ...]]]:
    """A stage's operators in run order, and each one's inputs inside the stage (memoized: callers
    must not change what they get)."""
    graph = build_layer_graph(model, tp_degree, layers)
    return graph_ops(graph), graph_predecessors(graph)


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


def layer_summary(model: ModelSpec, tp_degree: int, shape: TokenShape) -> CostSummary:
    """Totals of one layer (all layers are alike) at one token shape, per device."""
    return summarize_ops([op for _, op in layer_template(model, tp_degree).ops], shape)


def layer_weight_bytes_per_device(model: ModelSpec, tp_degree: int) -> int:
    return layer_template(model, tp_degree).weight_bytes


def layer_kv_bytes_per_device(model: ModelSpec, tp_degree: int, batch: int, capacity_tokens: int) -> int:
    return layer_template(model, tp_degree).kv_footprint_bytes(batch, capacity_tokens)
