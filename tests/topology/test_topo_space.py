"""The plan search space: placements, counting against hand-worked and brute-force counts, round trips."""

from __future__ import annotations

import pytest

from topology.cluster import build_cluster, load_cluster
from topology.errors import LayerwiseError
from topology.hardware import load_gpu, load_link
from topology.model import ModelSpec, load_model
from topology.partition import partition_cache_fit, partition_tp_pp
from topology.partition.space import (
    Layout,
    check_layout,
    count_layouts,
    enumerate_layouts,
    layout_of_plan,
    microbatch_choices,
    next_starts,
    plan_of_layout,
    tp_choices,
)
from topology.workload import Workload


def _cluster(nodes: int, per_node: int):  # type: ignore[no-untyped-def]
    return build_cluster(f"{nodes}x{per_node}", nodes, per_node, load_gpu("h100-sxm"), load_link("nvlink4"),
                         load_link("ib-ndr-400") if nodes > 1 else None)


def _two_layer_model() -> ModelSpec:
    return ModelSpec(name="two", num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2, head_dim=16,
                     mlp_hidden_size=128, gated_mlp=True, vocab_size=256, dtype_bytes=4)


def _decode(batch: int = 8) -> Workload:
    return Workload(phase="decode", batch_size=batch, prompt_len=16, context_len=16, warmup_iters=1,
                    measured_iters=3)


def test_next_starts_by_hand() -> None:
    # 8 GPUs a node: after device 4, a TP4 group fits at 4 (or skips to 8); a TP8 group must skip to 8
    assert next_starts(4, 4, 8, 16) == (4, 8)
    assert next_starts(4, 8, 8, 16) == (8,)
    assert next_starts(8, 8, 8, 16) == (8,)  # a node's first GPU: nothing to skip
    assert next_starts(12, 8, 8, 16) == ()  # would need devices 16..23
    assert next_starts(6, 2, 8, 12) == (6, 8)
    assert next_starts(6, 4, 8, 12) == (8,)


def test_counts_by_hand() -> None:
    """2 layers, batch 1. One node of 2 GPUs, TP 1 or 2: [2 layers at TP1], [2 at TP2], [1 at TP1 | 1 at TP1]
    (a second stage after a TP2 stage, or a TP2 stage after a TP1 one, has no room): 3 layouts.
    Two nodes of 1 GPU, TP 1 only: [2 layers], [1 | 1 across the nodes]: 2 layouts."""
    model, batch1 = _two_layer_model(), _decode(batch=1)
    assert tp_choices(model, _cluster(1, 2)) == (1, 2)
    assert count_layouts(model, _cluster(1, 2), batch1) == 3
    assert count_layouts(model, _cluster(2, 1), batch1) == 2
    assert sorted(layout.describe() for layout in enumerate_layouts(model, _cluster(1, 2), batch1)) == [
        "TP1xPP1 mb=1", "TP1xPP2 mb=1", "TP2xPP1 mb=1"]
    assert microbatch_choices(_decode(batch=12)) == (1, 2, 3, 4, 6, 12)


@pytest.mark.parametrize(("nodes", "per_node", "max_gpus"), [(1, 4, None), (2, 2, None), (2, 4, None), (2, 4, 6)])
def test_count_equals_enumeration(nodes: int, per_node: int, max_gpus: int | None) -> None:
    model, workload = load_model("tiny-test"), _decode()
    cluster = _cluster(nodes, per_node)
    layouts = list(enumerate_layouts(model, cluster, workload, max_gpus))
    assert len(layouts) == len(set(layouts)) == count_layouts(model, cluster, workload, max_gpus)
    for layout in layouts:
        check_layout(layout, model, cluster, workload, max_gpus or cluster.num_devices)


def test_partitioner_plans_are_points_of_the_space(seed_model: ModelSpec, seed_decode: Workload) -> None:
    cluster = load_cluster("seed-16xh100")
    plans = [partition_tp_pp(seed_model, cluster, seed_decode, tp=8, pp=2, microbatches=8),
             partition_tp_pp(seed_model, cluster, seed_decode, tp=4, pp=4, microbatches=4),
             partition_cache_fit(seed_model, cluster, seed_decode, capacity="l2", microbatches=1)]
    for plan in plans:
        layout = layout_of_plan(plan, cluster)
        check_layout(layout, seed_model, cluster, seed_decode, cluster.num_devices)
        rebuilt = plan_of_layout(layout, seed_model, cluster, seed_decode, plan.partitioner)
        assert [(s.layer_start, s.layer_stop, s.devices) for s in rebuilt.stages] == \
            [(s.layer_start, s.layer_stop, s.devices) for s in plan.stages]
        assert rebuilt.schedule == plan.schedule


def test_a_layout_with_a_gap_becomes_a_plan_on_those_devices(seed_model: ModelSpec, seed_decode: Workload) -> None:
    cluster = load_cluster("seed-16xh100")
    layout = Layout(microbatches=4, layer_counts=(6, 10), tp_degrees=(4, 8), starts=(0, 8))
    plan = plan_of_layout(layout, seed_model, cluster, seed_decode, "optimal")
    assert plan.stages[1].devices == tuple(f"gpu{i}" for i in range(8, 16))
    with pytest.raises(LayerwiseError, match="starts"):
        check_layout(Layout(4, (6, 10), (4, 8), (0, 4)), seed_model, cluster, seed_decode, 16)
    with pytest.raises(LayerwiseError, match="spans nodes"):
        plan_of_layout(Layout(4, (6, 10), (4, 8), (0, 4)), seed_model, cluster, seed_decode, "optimal")
