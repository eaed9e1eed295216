"""tp-pp, cache-fit and min-max-bytes on hand-picked cases (the property tests cover random ones)."""

from __future__ import annotations

import pytest

from topology.cluster import Cluster, build_cluster, load_cluster
from topology.errors import LayerwiseError
from topology.footprint import stage_footprint
from topology.hardware import load_gpu, load_link
from topology.model import ModelSpec
from topology.partition import (
    bytes_moved_cost,
    partition_cache_fit,
    partition_min_max_bytes,
    partition_tp_pp,
    plan_cost,
    resolve_capacity_bytes,
)
from topology.partition.tp_pp import even_layer_split
from topology.workload import Workload

TINY_LAYER_WEIGHTS = 147_968  # tiny-test: 36,992 float32 parameters per layer


@pytest.fixture(scope="module")
def cpu4() -> Cluster:
    return build_cluster("cpu4", 1, 4, load_gpu("h100-sxm"), load_link("nvlink4"), None)


@pytest.fixture(scope="module")
def tiny_decode() -> Workload:
    return Workload(phase="decode", batch_size=8, prompt_len=16, context_len=16, warmup_iters=0, measured_iters=1)


def spans(plan: object) -> list[tuple[int, int]]:
    return [(s.layer_start, s.layer_stop) for s in plan.stages]  # type: ignore[attr-defined]


# --- tp-pp -------------------------------------------------------------------------------------

def test_seed_baseline_tp8_pp2(seed_model: ModelSpec, seed_cluster: Cluster, seed_decode: Workload) -> None:
    plan = partition_tp_pp(seed_model, seed_cluster, seed_decode, tp=8, pp=2, microbatches=8)
    assert spans(plan) == [(0, 8), (8, 16)]
    assert plan.stages[0].devices == tuple(f"gpu{i}" for i in range(8))
    assert plan.stages[1].devices == tuple(f"gpu{i}" for i in range(8, 16))
    assert (plan.schedule, plan.microbatches, plan.describe()) == ("tp-pp", 8, "tp-pp TP8xPP2 mb=8")
    assert all(s.footprint.weights_bytes > plan.device_l2_usable_bytes for s in plan.stages)  # streamed, not resident
    assert partition_tp_pp(seed_model, seed_cluster, seed_decode, tp=8, pp=2).microbatches == 2  # default pp


@pytest.mark.parametrize(("layers", "parts", "expected"), [
    (16, 2, [(0, 8), (8, 16)]),
    (10, 4, [(0, 3), (3, 6), (6, 8), (8, 10)]),  # 10 % 4 = 2: the first two stages take one more
    (5, 5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]),
    (7, 1, [(0, 7)]),
])
def test_even_layer_split(layers: int, parts: int, expected: list[tuple[int, int]]) -> None:
    assert even_layer_split(layers, parts) == expected


def test_even_layer_split_needs_a_layer_per_stage() -> None:
    with pytest.raises(LayerwiseError) as info:
        even_layer_split(4, 5)
    assert (info.value.field, info.value.message) == ("pp", "pp=5 must be between 1 and num_layers=4")


def test_tp_pp_errors(seed_model: ModelSpec, seed_cluster: Cluster, seed_decode: Workload) -> None:
    cases = [
        (dict(tp=3, pp=1), "tp", "tp=3 does not divide num_heads=32"),
        (dict(tp=16, pp=1), "tp", "tp=16 exceeds gpus_per_node=8"),
        (dict(tp=8, pp=3), "pp", "tp=8 x pp=3 = 24 devices"),
        (dict(tp=1, pp=17), "pp", "tp=1 x pp=17 = 17 devices, cluster 'seed-16xh100' has 16"),
        (dict(tp=1, pp=0), "pp", "pp=0"),
        (dict(tp=8, pp=2, microbatches=3), "plan.microbatches", "microbatches=3 does not divide batch_size=128"),
    ]
    for kwargs, field, text in cases:
        with pytest.raises(LayerwiseError) as info:
            partition_tp_pp(seed_model, seed_cluster, seed_decode, **kwargs)  # type: ignore[arg-type]
        assert info.value.field == field, kwargs
        assert text in info.value.message, kwargs


def test_tp_pp_group_may_not_span_nodes(tiny_model: ModelSpec, tiny_decode: Workload) -> None:
    three_per_node = build_cluster("3x2", 2, 3, load_gpu("h100-sxm"), load_link("nvlink4"), load_link("ib-ndr-400"))
    with pytest.raises(LayerwiseError) as info:
        partition_tp_pp(tiny_model, three_per_node, tiny_decode, tp=2, pp=2)
    assert info.value.field == "stages[1].devices" and "spans nodes" in info.value.message


def test_tp_pp_footprint_over_hbm(seed_model: ModelSpec) -> None:
    cluster = load_cluster("h100x1")
    huge = Workload(phase="decode", batch_size=128, prompt_len=100000, context_len=100000)
    with pytest.raises(LayerwiseError) as info:
        partition_tp_pp(seed_model, cluster, huge, tp=1, pp=1)
    assert info.value.field == "workload.batch_size" and "the largest context_len that fits is" in info.value.message


# --- cache-fit ---------------------------------------------------------------------------------

def test_seed_cache_fit_no_layer_fits_l2(seed_model: ModelSpec, seed_cluster: Cluster,
                                         seed_decode: Workload) -> None:
    plan = partition_cache_fit(seed_model, seed_cluster, seed_decode, capacity="l2")
    l2 = seed_cluster.gpu.l2_usable_bytes
    assert spans(plan) == [(i, i + 1) for i in range(16)]
    assert plan.devices == seed_cluster.devices
    assert (plan.schedule, plan.fit_capacity_bytes, plan.fit_counts) == ("layer-wise", l2, "weights")
    assert plan.notes[0] == f"no layer fits C={l2} B: one layer per device, as the seed ran it"
    overflow = 536_887_296 - l2
    assert plan.notes[1] == f"layer 0 does not fit: weights 536887296 B exceed C={l2} B by {overflow} B"
    assert len(plan.notes) == 17
    assert all(s.footprint.weights_bytes > plan.device_l2_usable_bytes for s in plan.stages)  # streamed, not resident


def test_capacity_names(seed_cluster: Cluster) -> None:
    gpu = seed_cluster.gpu
    assert resolve_capacity_bytes("l2", seed_cluster) == gpu.l2_usable_bytes
    assert resolve_capacity_bytes("L2", seed_cluster) == gpu.l2_usable_bytes
    assert resolve_capacity_bytes("sram", seed_cluster) == 132 * 233_472
    assert resolve_capacity_bytes("l2+sram", seed_cluster) == gpu.l2_usable_bytes + gpu.sram_bytes
    assert resolve_capacity_bytes(12345, seed_cluster) == 12345
    assert resolve_capacity_bytes("1e6", seed_cluster) == 1_000_000
    assert resolve_capacity_bytes("2048", seed_cluster) == 2048
    for bad in ("lots", 0, -5, "0", True):
        with pytest.raises(LayerwiseError) as info:
            resolve_capacity_bytes(bad, seed_cluster)  # type: ignore[arg-type]
        assert info.value.field == "capacity", bad


def test_cache_fit_groups_and_leaves_devices_idle(tiny_model: ModelSpec, cpu4: Cluster,
                                                   tiny_decode: Workload) -> None:
    plan = partition_cache_fit(tiny_model, cpu4, tiny_decode, capacity=2 * TINY_LAYER_WEIGHTS)
    assert spans(plan) == [(0, 2), (2, 4)]
    assert plan.devices == ("gpu0", "gpu1")
    assert plan.notes == ("2 partitions for 4 devices: 2 devices stay idle",)
    assert all(s.footprint.weights_bytes <= plan.device_l2_usable_bytes for s in plan.stages)
    # one byte less and two layers no longer fit together
    plan = partition_cache_fit(tiny_model, cpu4, tiny_decode, capacity=2 * TINY_LAYER_WEIGHTS - 1)
    assert spans(plan) == [(0, 1), (1, 2), (2, 3), (3, 4)] and plan.notes == ()


def test_cache_fit_counts(tiny_model: ModelSpec, cpu4: Cluster, tiny_decode: Workload) -> None:
    kv_per_layer = 8 * 16 * 2 * 2 * 16 * 4
    act = stage_footprint(tiny_model, 1, 1, tiny_decode, 1).activation_bytes
    cap = 2 * (TINY_LAYER_WEIGHTS + kv_per_layer)  # two layers of weights and KV, exactly
    halves, singles = [(0, 2), (2, 4)], [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert spans(partition_cache_fit(tiny_model, cpu4, tiny_decode, capacity=cap - 1)) == halves
    assert spans(partition_cache_fit(tiny_model, cpu4, tiny_decode, capacity=cap, counts="weights+kv")) == halves
    assert spans(partition_cache_fit(tiny_model, cpu4, tiny_decode, capacity=cap - 1,
                                     counts="weights+kv")) == singles
    # activations count once per partition (one microbatch in flight), not per layer
    assert spans(partition_cache_fit(tiny_model, cpu4, tiny_decode, capacity=cap + act,
                                     counts="weights+kv+activations")) == halves
    assert spans(partition_cache_fit(tiny_model, cpu4, tiny_decode, capacity=cap + act - 1,
                                     counts="weights+kv+activations")) == singles
    with pytest.raises(LayerwiseError) as info:
        partition_cache_fit(tiny_model, cpu4, tiny_decode, counts="kv")
    assert info.value.field == "counts"


def test_cache_fit_more_partitions_than_devices(tiny_model: ModelSpec, cpu4: Cluster,
                                                 tiny_decode: Workload) -> None:
    with pytest.raises(LayerwiseError) as info:
        partition_cache_fit(tiny_model, cpu4, tiny_decode, capacity=TINY_LAYER_WEIGHTS, num_devices=3)
    assert info.value.field == "capacity"
    assert "makes 4 partitions, more than the 3 devices" in info.value.message
    for bad in (0, 5):
        with pytest.raises(LayerwiseError) as info:
            partition_cache_fit(tiny_model, cpu4, tiny_decode, num_devices=bad)
        assert info.value.field == "num_devices"


def test_cache_fit_mixed_fit(cpu4: Cluster, tiny_decode: Workload, tiny_model: ModelSpec) -> None:
    # with C between one layer and two, every layer fits alone: no "does not fit" note
    plan = partition_cache_fit(tiny_model, cpu4, tiny_decode, capacity=TINY_LAYER_WEIGHTS + 10)
    assert len(plan.stages) == 4 and not any("does not fit" in n for n in plan.notes)


# --- min-max-bytes --------------------------------------------------------------------------------

def test_min_max_bytes_on_the_seed(seed_model: ModelSpec, seed_cluster: Cluster, seed_decode: Workload) -> None:
    cost = bytes_moved_cost(seed_model, seed_decode, 8)
    best = partition_min_max_bytes(seed_model, seed_cluster, seed_decode, microbatches=8)  # the default: bytes
    baseline = partition_tp_pp(seed_model, seed_cluster, seed_decode, tp=8, pp=2, microbatches=8)
    assert plan_cost(best, cost) <= plan_cost(baseline, cost)
    assert best.partitioner == "min-max-bytes"
    assert best.notes[0].startswith("min-max-bytes: the busiest stage moves ") and "not a time" in best.notes[0]
    assert sum(s.num_layers for s in best.stages) == 16


def test_min_max_bytes_hand_cost(tiny_model: ModelSpec, cpu4: Cluster, tiny_decode: Workload) -> None:
    # layer 0 costs 10, the others 1; TP not allowed: best is [0], [1..3] with max 10 (ties: fewest devices)
    weights = [10.0, 1.0, 1.0, 1.0]

    def cost(a: int, b: int, tp: int) -> float:
        return sum(weights[a:b])

    plan = partition_min_max_bytes(tiny_model, cpu4, tiny_decode, cost_fn=cost, allowed_tp=[1])
    assert spans(plan) == [(0, 1), (1, 4)]
    assert plan_cost(plan, cost) == 10.0
    # with TP 2 halving the cost, layer 0 at TP 2 (5) and the rest at TP 1 (3) on 3 devices
    plan = partition_min_max_bytes(tiny_model, cpu4, tiny_decode, cost_fn=lambda a, b, t: sum(weights[a:b]) / t)
    assert plan_cost(plan, lambda a, b, t: sum(weights[a:b]) / t) == 5.0
    assert spans(plan) == [(0, 1), (1, 4)]  # ties go to fewer devices: 3, not 4
    assert [s.tp_degree for s in plan.stages] == [2, 1]


def test_min_max_bytes_errors(tiny_model: ModelSpec, cpu4: Cluster, tiny_decode: Workload) -> None:
    with pytest.raises(LayerwiseError) as info:
        partition_min_max_bytes(tiny_model, cpu4, tiny_decode, max_devices=9)
    assert info.value.field == "max_devices"
    with pytest.raises(LayerwiseError) as info:
        partition_min_max_bytes(tiny_model, cpu4, tiny_decode, cost_fn=lambda a, b, t: float("inf"))
    assert info.value.field == "plan"


def test_min_max_bytes_when_nothing_fits_hbm(seed_model: ModelSpec) -> None:
    huge = Workload(phase="decode", batch_size=128, prompt_len=200000, context_len=200000)
    with pytest.raises(LayerwiseError) as info:
        partition_min_max_bytes(seed_model, load_cluster("h100x1"), huge)
    assert info.value.field == "plan" and "fits in HBM" in info.value.message
