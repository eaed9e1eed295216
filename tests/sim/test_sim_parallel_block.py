"""A model whose layers are not a chain: parallel attention and MLP branches (GPT-J / PaLM style)."""

from __future__ import annotations

import networkx as nx
import pytest
from sim_toy import toy_experiment, toy_profile

from executor.checks import check_plan_runs
from sim.resolve import resolve_given
from sim.simulate import estimate, simulate
from topology.errors import LayerwiseError
from topology.experiment import build_plan
from topology.layer_graph import build_layer_graph, graph_ops

US = 1e-6
PARALLEL = {"num_layers": 1, "block": "parallel"}


def test_the_graph_has_two_branches() -> None:
    experiment = toy_experiment({"tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1}}, model={"block": "parallel"})
    graph = build_layer_graph(experiment.model, tp_degree=2)
    assert sorted(graph.successors("L0.norm")) == ["L0.gate_up", "L0.qkv"]
    assert sorted(graph.predecessors("L0.residual")) == ["L0.attn_allreduce", "L0.mlp_allreduce"]
    assert sorted(graph.predecessors("L1.residual")) == ["L0.residual", "L1.attn_allreduce", "L1.mlp_allreduce"]
    assert not nx.has_path(graph, "L0.attn_allreduce", "L0.gate_up")  # the MLP branch never waits for it
    order = [op.name for op in graph_ops(graph)][:10]
    assert order == ["L0.norm", "L0.qkv", "L0.attention", "L0.o_proj", "L0.attn_allreduce", "L0.gate_up", "L0.act",
                     "L0.down", "L0.mlp_allreduce", "L0.residual"]


def test_the_attention_all_reduce_hides_behind_the_mlp_branch() -> None:
    """One parallel layer at TP 2 on the toy cluster (1 byte = 1 us, compute free, no launch cost).

    Per device: norm 24 (8 weight + 16 in/out), qkv 68 (4x6x2 + 10x2), attention 48 (8 Q/O + 32 KV read
    + 8 KV write), o_proj 28 (2x4x2 + 6x2), then the MLP branch gate_up 48 (4x4x2 + 8x2), act 16 (GELU,
    2x4x2), down 48, and the residual adds three tensors, 32 (4 x 4 x 2). Each all-reduce of 8 bytes
    over 2 ranks takes 2 x 1 us + 8 B / 8e6 B/s = 3 us.

        0 norm 24 qkv 92 attention 140 o_proj 168 | gate_up 216 act 232 down 280 | residual 315
                                             168 attn all-reduce 171 (beside the MLP branch)
                                                                        280 mlp all-reduce 283
    One step (one stage, one microbatch, decode) = 315 us; without the overlap it would be 318.
    """
    experiment = toy_experiment({"tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1, "microbatches": 1}},
                                model=PARALLEL)
    events = simulate(resolve_given(experiment, "tp2", toy_profile()))
    twin = estimate(resolve_given(experiment, "tp2", toy_profile()))
    assert events.metrics.step_time_s == pytest.approx(315 * US, rel=1e-12)
    assert twin.metrics.step_time_s == pytest.approx(315 * US, rel=1e-12)
    stage = events.metrics.stages[0]
    assert stage.compute_s == pytest.approx(312 * US, rel=1e-12)
    assert stage.communication_s == pytest.approx(3 * US, rel=1e-12)  # only the all-reduce nothing hides
    assert events.metrics.simulation is not None
    assert events.metrics.simulation.communication.collective_events_per_iteration == 2


def test_the_executor_refuses_a_parallel_block() -> None:
    experiment = toy_experiment({"tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1}}, model=PARALLEL)
    plan = build_plan(experiment, "tp2")
    with pytest.raises(LayerwiseError, match="the executor runs sequential") as info:
        check_plan_runs(plan, experiment.workload, plan.num_devices, "seeded")
    assert info.value.field == "model.block"
