"""Structure of the operator graph: nodes per layer, collectives under TP, edges, DAG."""

from __future__ import annotations

import networkx as nx
import pytest

from topology.errors import LayerwiseError
from topology.layer_graph import build_layer_graph, check_tp_degree, graph_ops, layer_ops
from topology.model import ModelSpec

TP1_ORDER = ["attn_norm", "qkv", "attention", "o_proj", "attn_residual",
             "mlp_norm", "gate_up", "act", "down", "mlp_residual"]
TP_ORDER = ["attn_norm", "qkv", "attention", "o_proj", "attn_allreduce", "attn_residual",
            "mlp_norm", "gate_up", "act", "down", "mlp_allreduce", "mlp_residual"]


def test_layer_ops_order(seed_model: ModelSpec) -> None:
    assert [op.name for op in layer_ops(seed_model, 3, 1)] == [f"L3.{n}" for n in TP1_ORDER]
    assert [op.name for op in layer_ops(seed_model, 3, 8)] == [f"L3.{n}" for n in TP_ORDER]
    assert all(op.layer == 3 for op in layer_ops(seed_model, 3, 8))


@pytest.mark.parametrize(("tp", "per_layer"), [(1, 10), (2, 12), (8, 12)])
def test_graph_nodes_and_edges(seed_model: ModelSpec, tp: int, per_layer: int) -> None:
    graph = build_layer_graph(seed_model, tp)
    layers = seed_model.num_layers
    assert graph.number_of_nodes() == layers * per_layer
    # per layer: a chain (per_layer - 1 edges) + the attn -> mlp residual skip;
    # between layers: data into the next norm and the residual stream into the next residual add
    assert graph.number_of_edges() == layers * per_layer + (layers - 1) * 2
    assert nx.is_directed_acyclic_graph(graph)
    assert graph.graph["tp_degree"] == tp
    assert graph.edges["L0.attn_residual", "L0.mlp_residual"]["kind"] == "residual"
    assert graph.edges["L0.mlp_residual", "L1.attn_norm"]["kind"] == "data"
    assert graph.edges["L0.mlp_residual", "L1.attn_residual"]["kind"] == "residual"
    assert graph.edges["L0.qkv", "L0.attention"]["kind"] == "data"
    collectives = [n for n, data in graph.nodes(data=True) if data["op"].kind == "allreduce"]
    assert len(collectives) == (0 if tp == 1 else 2 * layers)
    if tp > 1:
        assert graph.has_edge("L0.o_proj", "L0.attn_allreduce")
        assert graph.has_edge("L0.down", "L0.mlp_allreduce")
        assert graph.nodes["L0.mlp_allreduce"]["op"].tp_degree == tp


def test_graph_ops_follow_execution_order(seed_model: ModelSpec) -> None:
    graph = build_layer_graph(seed_model, 8, layers=range(2, 5))
    expected = [op for layer in range(2, 5) for op in layer_ops(seed_model, layer, 8)]
    assert graph_ops(graph) == expected
    assert min(nx.topological_sort(graph), key=lambda n: 0) == "L2.attn_norm"
    assert [n for n in graph if graph.in_degree(n) == 0] == ["L2.attn_norm"]
    assert [n for n in graph if graph.out_degree(n) == 0] == ["L4.mlp_residual"]


@pytest.mark.parametrize(("tp", "name", "value"), [
    (3, "num_heads", 32), (5, "num_heads", 32), (64, "num_heads", 32),
])
def test_tp_must_divide_heads(seed_model: ModelSpec, tp: int, name: str, value: int) -> None:
    with pytest.raises(LayerwiseError) as info:
        check_tp_degree(seed_model, tp)
    assert info.value.field == "tp"
    assert f"tp={tp} does not divide {name}={value}" in str(info.value)


def test_tp_must_divide_kv_heads_and_mlp() -> None:
    gqa = ModelSpec("gqa", 2, 64, 8, 2, 8, 128, True, 100, 2)
    with pytest.raises(LayerwiseError, match="tp=4 does not divide num_kv_heads=2"):
        layer_ops(gqa, 0, 4)
    odd_mlp = ModelSpec("odd", 2, 64, 4, 4, 16, 6, True, 100, 2)
    with pytest.raises(LayerwiseError, match="tp=4 does not divide mlp_hidden_size=6"):
        layer_ops(odd_mlp, 0, 4)
    with pytest.raises(LayerwiseError, match="tp=0 must be a positive integer"):
        check_tp_degree(odd_mlp, 0)
