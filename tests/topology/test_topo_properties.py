"""Property tests over random small models, clusters and workloads (hypothesis)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from topology.cluster import Cluster, build_cluster
from topology.errors import LayerwiseError
from topology.footprint import FOOTPRINT_COUNTS, stage_footprint
from topology.hardware import load_gpu, load_link
from topology.model import ModelSpec, model_from_dict
from topology.partition import (
    bytes_moved_cost,
    partition_cache_fit,
    partition_min_max_bytes,
    partition_tp_pp,
    plan_cost,
)
from topology.partition.min_max_bytes import StageCost
from topology.plan import Plan, plan_from_dict
from topology.workload import Workload, workload_from_dict

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def models(draw: st.DrawFn) -> ModelSpec:
    kv_heads = draw(st.sampled_from([1, 2, 4]))
    heads = kv_heads * draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.sampled_from([8, 16, 32]))
    return ModelSpec(
        name="random",
        num_layers=draw(st.integers(1, 10)),
        hidden_size=draw(st.sampled_from([32, 64, 128])),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        mlp_hidden_size=draw(st.sampled_from([48, 64, 96, 256])),
        gated_mlp=draw(st.booleans()),
        vocab_size=100,
        dtype_bytes=draw(st.sampled_from([1, 2, 4])),
    )


@st.composite
def clusters(draw: st.DrawFn) -> Cluster:
    nodes = draw(st.integers(1, 3))
    return build_cluster(
        "random", nodes, draw(st.integers(1, 8)), load_gpu(draw(st.sampled_from(["h100-sxm", "h200-sxm"]))),
        load_link("nvlink4"), load_link("ib-ndr-400") if nodes > 1 else None,
    )


@st.composite
def workloads(draw: st.DrawFn) -> Workload:
    phase = draw(st.sampled_from(["prefill", "decode"]))
    length = draw(st.integers(1, 64))
    return Workload(phase=phase, batch_size=draw(st.sampled_from([1, 2, 4, 8, 12])), prompt_len=length,
                    context_len=length, warmup_iters=0, measured_iters=1)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_plan_shape(plan: Plan, model: ModelSpec, cluster: Cluster) -> None:
    """Every layer in exactly one stage, stages contiguous and in order, devices disjoint, TP inside a node."""
    covered = [layer for stage in plan.stages for layer in stage.layers]
    assert covered == list(range(model.num_layers))
    assert all(s.num_layers >= 1 for s in plan.stages)
    assert len(set(plan.devices)) == len(plan.devices) <= cluster.num_devices
    assert set(plan.devices) <= set(cluster.devices)
    for stage in plan.stages:
        assert stage.tp_degree == len(stage.devices)
        assert cluster.same_node(stage.devices)
        assert stage.footprint.total_bytes <= cluster.gpu.hbm_capacity_bytes
    assert plan_from_dict(json.loads(plan.to_json())) == plan


def random_additive_cost(data: st.DataObject, model: ModelSpec) -> StageCost:
    """``cost = (sum of random per-layer weights) x a random factor per TP degree``."""
    per_layer = data.draw(st.lists(st.floats(0.0, 100.0), min_size=model.num_layers, max_size=model.num_layers))
    per_tp = {t: data.draw(st.floats(0.05, 2.0)) for t in range(1, 9)}

    def cost(layer_start: int, layer_stop: int, tp: int) -> float:
        return sum(per_layer[layer_start:layer_stop]) * per_tp[tp]

    return cost


@SETTINGS
@given(model=models(), cluster=clusters(), workload=workloads(), data=st.data())
def test_tp_pp_plans(model: ModelSpec, cluster: Cluster, workload: Workload, data: st.DataObject) -> None:
    valid_tp = [t for t in range(1, 9) if not (model.num_kv_heads % t or model.mlp_hidden_size % t)]
    tp = data.draw(st.sampled_from(valid_tp) | st.integers(1, 8), label="tp")
    pp = data.draw(st.integers(1, max(1, min(model.num_layers, cluster.num_devices // tp)) + 1), label="pp")
    mb = data.draw(st.sampled_from(divisors(workload.batch_size)), label="microbatches")
    try:
        plan = partition_tp_pp(model, cluster, workload, tp=tp, pp=pp, microbatches=mb)
    except LayerwiseError as exc:
        assert exc.field in {"tp", "pp"} or exc.field.endswith(".devices"), exc
        event("tp-pp rejected")
        return
    event("tp-pp plan")
    check_plan_shape(plan, model, cluster)
    sizes = [s.num_layers for s in plan.stages]
    assert len(sizes) == pp and max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert all(s.tp_degree == tp for s in plan.stages)


@SETTINGS
@given(model=models(), cluster=clusters(), workload=workloads(), data=st.data())
def test_cache_fit_respects_capacity(model: ModelSpec, cluster: Cluster, workload: Workload,
                                     data: st.DataObject) -> None:
    counts = data.draw(st.sampled_from(FOOTPRINT_COUNTS), label="counts")
    mb = data.draw(st.sampled_from(divisors(workload.batch_size)), label="microbatches")

    def counted(num_layers: int) -> int:
        return stage_footprint(model, num_layers, 1, workload, mb).counted_bytes(counts)

    one = counted(1)
    capacity = data.draw(st.integers(max(1, one // 2), 4 * one), label="capacity")
    try:
        plan = partition_cache_fit(model, cluster, workload, capacity=capacity, counts=counts, microbatches=mb)
    except LayerwiseError as exc:
        assert exc.field == "capacity"
        assert f"more than the {cluster.num_devices} devices" in exc.message
        partitions = int(exc.message.split(" makes ")[1].split()[0])
        assert partitions > cluster.num_devices
        event("cache-fit: too many partitions")
        return
    event("cache-fit: idle devices" if plan.num_stages < cluster.num_devices else "cache-fit: every device")
    event("cache-fit: no layer fits" if one > capacity else "cache-fit: layers fit")
    check_plan_shape(plan, model, cluster)
    assert plan.fit_capacity_bytes == capacity and plan.fit_counts == counts
    for stage in plan.stages:
        assert stage.tp_degree == 1
        if stage.num_layers > 1:
            assert counted(stage.num_layers) <= capacity
        elif counted(1) > capacity:
            assert (f"layer {stage.layer_start} does not fit: {counts} {counted(1)} B exceed C={capacity} B "
                    f"by {counted(1) - capacity} B") in plan.notes
        if stage.layer_stop < model.num_layers and counted(1) <= capacity:
            assert counted(stage.num_layers + 1) > capacity  # greedy: the next layer would not fit
    idle = cluster.num_devices - plan.num_stages
    assert any("devices stay idle" in n for n in plan.notes) == (idle > 0)
    assert any(n.startswith("no layer fits") for n in plan.notes) == (one > capacity)


@SETTINGS
@given(model=models(), cluster=clusters(), workload=workloads(), data=st.data())
def test_min_max_bytes_is_never_worse(model: ModelSpec, cluster: Cluster, workload: Workload,
                                data: st.DataObject) -> None:
    mb = data.draw(st.sampled_from(divisors(workload.batch_size)), label="microbatches")
    costs = {"bytes moved": bytes_moved_cost(model, workload, mb),
             "random additive": random_additive_cost(data, model)}
    rivals: list[Plan] = []
    try:
        rivals.append(partition_cache_fit(model, cluster, workload, capacity=data.draw(
            st.integers(1, 3 * model.weight_bytes_per_layer), label="capacity"), microbatches=mb))
    except LayerwiseError:
        pass
    for tp in (1, 2, 4, 8):
        for pp in range(1, model.num_layers + 1):
            try:
                rivals.append(partition_tp_pp(model, cluster, workload, tp=tp, pp=pp, microbatches=mb))
            except LayerwiseError:
                pass
    event(f"min-max-bytes: {min(len(rivals), 5)}+ rivals" if len(rivals) >= 5 else f"min-max-bytes: {len(rivals)}")
    for name, cost in costs.items():
        best = partition_min_max_bytes(model, cluster, workload, cost_fn=cost, microbatches=mb)
        check_plan_shape(best, model, cluster)
        for rival in rivals:
            assert plan_cost(best, cost) <= plan_cost(rival, cost), (name, rival.describe())


MODEL_BASE: dict[str, Any] = {"num_layers": 2, "hidden_size": 64, "num_heads": 4, "num_kv_heads": 2,
                              "head_dim": 16, "mlp_hidden_size": 128, "gated_mlp": True, "dtype_bytes": 2}
WORKLOAD_BASE: dict[str, Any] = {"phase": "decode", "batch_size": 4, "prompt_len": 8, "context_len": 8,
                                 "warmup_iters": 0, "measured_iters": 1, "seed": 0}
BAD_VALUES = st.sampled_from([0, -3, "x", 2.5, None, True, [1]])


@SETTINGS
@given(key=st.sampled_from(sorted(MODEL_BASE)), value=BAD_VALUES)
def test_invalid_model_field_is_named(key: str, value: Any) -> None:
    if key == "gated_mlp" and isinstance(value, bool):
        return  # a boolean is a valid gated_mlp
    with pytest.raises(LayerwiseError) as info:
        model_from_dict({**MODEL_BASE, key: value})
    assert info.value.field == f"model.{key}"


@SETTINGS
@given(key=st.sampled_from(sorted(WORKLOAD_BASE)), value=BAD_VALUES)
def test_invalid_workload_field_is_named(key: str, value: Any) -> None:
    if key in ("warmup_iters", "seed") and value == 0 and not isinstance(value, bool):
        return  # zero warm-up iterations, and seed 0, are valid
    with pytest.raises(LayerwiseError) as info:
        workload_from_dict({**WORKLOAD_BASE, key: value})
    assert info.value.field == f"workload.{key}"


def test_the_seed_is_a_signed_64_bit_integer() -> None:
    assert workload_from_dict({**WORKLOAD_BASE, "seed": 2**63 - 1}).seed == 2**63 - 1
    for bad in (2**63, {"a": 1}, [1, 2]):  # [1, 2] and {a: 1} once crashed the simulator (unhashable)
        with pytest.raises(LayerwiseError, match=r"^workload\.seed: must be an integer from 0 to 2\*\*63 - 1"):
            workload_from_dict({**WORKLOAD_BASE, "seed": bad})
