"""Plan validation (errors name the field and the numbers) and its JSON round trip."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from topology.errors import LayerwiseError
from topology.footprint import Footprint, stage_footprint
from topology.model import ModelSpec
from topology.partition import partition_cache_fit, partition_tp_pp
from topology.plan import PLAN_SCHEMA_VERSION, Plan, Stage, load_plan_json, plan_from_dict
from topology.workload import Workload

SMALL = Footprint(weights_bytes=1000, kv_cache_bytes=100, activation_bytes=10)


def make_plan(model: ModelSpec, stages: list[tuple[int, int, tuple[str, ...]]], **overrides: Any) -> Plan:
    built = tuple(
        Stage(index=i, layer_start=a, layer_stop=b, devices=devices, tp_degree=len(devices), footprint=SMALL)
        for i, (a, b, devices) in enumerate(stages)
    )
    values: dict[str, Any] = dict(
        model=model, cluster_name="test", schedule="layer-wise", partitioner="hand", microbatches=1,
        stages=built, device_hbm_capacity_bytes=10**6, device_l2_usable_bytes=5000, device_sram_bytes=3000,
    )
    values.update(overrides)
    return Plan(**values)


def error_of(fn: Any, *args: Any, **kwargs: Any) -> LayerwiseError:
    with pytest.raises(LayerwiseError) as info:
        fn(*args, **kwargs)
    return info.value


def test_valid_hand_plan(tiny_model: ModelSpec) -> None:
    plan = make_plan(tiny_model, [(0, 1, ("gpu0",)), (1, 4, ("gpu1", "gpu2"))])
    assert plan.devices == ("gpu0", "gpu1", "gpu2")
    assert (plan.num_devices, plan.num_stages) == (3, 2)
    assert plan.stage_of_device("gpu2").index == 1
    assert list(plan.stages[1].layers) == [1, 2, 3]
    assert plan.describe() == "layer-wise TP1x2xPP2 mb=1"
    assert error_of(plan.stage_of_device, "gpu9").field == "device"


def test_layer_missing(tiny_model: ModelSpec) -> None:
    err = error_of(make_plan, tiny_model, [(0, 2, ("gpu0",)), (3, 4, ("gpu1",))])
    assert (err.field, err.message) == ("plan.stages", "layer 2 is in no stage")
    err = error_of(make_plan, tiny_model, [(0, 3, ("gpu0",))])
    assert (err.field, err.message) == ("plan.stages", "layer 3 is in no stage")


def test_layer_twice(tiny_model: ModelSpec) -> None:
    err = error_of(make_plan, tiny_model, [(0, 2, ("gpu0",)), (1, 4, ("gpu1",))])
    assert (err.field, err.message) == ("stages[1].layers", "layer 1 is in stages 0 and 1")


def test_stages_out_of_layer_order(tiny_model: ModelSpec) -> None:
    err = error_of(make_plan, tiny_model, [(0, 1, ("gpu0",)), (2, 4, ("gpu1",)), (1, 2, ("gpu2",))])
    assert err.field == "stages[1].layer_start"
    assert "2 does not follow stage 0's layer_stop 1" in err.message


def test_empty_or_out_of_range_stage(tiny_model: ModelSpec) -> None:
    err = error_of(make_plan, tiny_model, [(0, 0, ("gpu0",)), (0, 4, ("gpu1",))])
    assert err.field == "stages[0].layers" and "[0, 0)" in err.message
    err = error_of(make_plan, tiny_model, [(0, 5, ("gpu0",))])
    assert err.field == "stages[0].layers" and "outside 0..4" in err.message
    assert error_of(make_plan, tiny_model, []).field == "plan.stages"


def test_overlapping_devices(tiny_model: ModelSpec) -> None:
    err = error_of(make_plan, tiny_model, [(0, 2, ("gpu0", "gpu1")), (2, 4, ("gpu1", "gpu2"))])
    assert err.field == "stages[1].devices"
    assert "device gpu1 is also in stage 0" in err.message


def test_tp_not_dividing_heads_or_mlp(tiny_model: ModelSpec) -> None:
    # tiny-test: 4 heads, 2 KV heads, MLP 128
    err = error_of(make_plan, tiny_model, [(0, 4, ("gpu0", "gpu1", "gpu2"))])
    assert (err.field, err.message) == ("stages[0].tp_degree", "tp=3 does not divide num_heads=4")
    err = error_of(make_plan, tiny_model, [(0, 4, ("gpu0", "gpu1", "gpu2", "gpu3"))])
    assert (err.field, err.message) == ("stages[0].tp_degree", "tp=4 does not divide num_kv_heads=2")
    odd_mlp = ModelSpec("odd", 2, 64, 4, 4, 16, 6, True, 100, 2)
    err = error_of(make_plan, odd_mlp, [(0, 2, ("a", "b", "c", "d"))])
    assert (err.field, err.message) == ("stages[0].tp_degree", "tp=4 does not divide mlp_hidden_size=6")


def test_tp_degree_must_match_devices(tiny_model: ModelSpec) -> None:
    plan = make_plan(tiny_model, [(0, 4, ("gpu0", "gpu1"))])
    bad = dataclasses.replace(plan.stages[0], tp_degree=1)
    err = error_of(dataclasses.replace, plan, stages=(bad,))
    assert (err.field, err.message) == ("stages[0].tp_degree", "tp=1 but the stage has 2 devices")


def test_stage_without_devices(tiny_model: ModelSpec) -> None:
    plan = make_plan(tiny_model, [(0, 4, ("gpu0",))])
    bad = dataclasses.replace(plan.stages[0], devices=(), tp_degree=0)
    err = error_of(dataclasses.replace, plan, stages=(bad,))
    assert err.field == "stages[0].tp_degree"


def test_footprint_over_hbm(tiny_model: ModelSpec) -> None:
    err = error_of(make_plan, tiny_model, [(0, 4, ("gpu0",))], device_hbm_capacity_bytes=1000)
    assert err.field == "stages[0].footprint"
    assert "exceeds HBM" in err.message and "by 0.00 GB" in err.message
    big = Footprint(weights_bytes=90 * 10**9, kv_cache_bytes=2 * 10**9, activation_bytes=0)
    plan = make_plan(tiny_model, [(0, 4, ("gpu0",))], device_hbm_capacity_bytes=10**12)
    err = error_of(dataclasses.replace, plan, stages=(dataclasses.replace(plan.stages[0], footprint=big),),
                   device_hbm_capacity_bytes=80 * 10**9)
    assert err.message == ("92.00 GB per device (weights 90.00, KV 2.00, activations 0.00) "
                           "exceeds HBM 80.00 GB by 12.00 GB")


def test_a_version_1_plan_file_still_loads(tiny_model: ModelSpec) -> None:
    """Version 1 plans (saved beside earlier results) carried a weight residence per stage; it is dropped."""
    plan = make_plan(tiny_model, [(0, 4, ("gpu0",))])
    old = plan.to_dict()
    old["schema_version"] = 1
    old["stages"][0]["weight_residence"] = "hbm"
    assert plan_from_dict(old) == plan
    old["schema_version"] = 3
    assert error_of(plan_from_dict, old).field == "plan.schema_version"


@pytest.mark.parametrize(("field", "value", "expected_field"), [
    ("schedule", "zigzag", "plan.schedule"),
    ("microbatches", 0, "plan.microbatches"),
    ("microbatches", True, "plan.microbatches"),
    ("schema_version", 99, "plan.schema_version"),
])
def test_bad_plan_fields(tiny_model: ModelSpec, field: str, value: Any, expected_field: str) -> None:
    err = error_of(make_plan, tiny_model, [(0, 4, ("gpu0",))], **{field: value})
    assert err.field == expected_field


def test_stage_index_must_be_position(tiny_model: ModelSpec) -> None:
    plan = make_plan(tiny_model, [(0, 4, ("gpu0",))])
    err = error_of(dataclasses.replace, plan, stages=(dataclasses.replace(plan.stages[0], index=3),))
    assert (err.field, err.message) == ("stages[0].index", "is 3, expected 0")


def test_json_round_trip_of_seed_plans(seed_model: ModelSpec, seed_decode: Workload, tmp_path: Path) -> None:
    from topology.cluster import load_cluster

    cluster = load_cluster("seed-16xh100")
    for plan in (partition_tp_pp(seed_model, cluster, seed_decode, tp=8, pp=2, microbatches=8),
                 partition_cache_fit(seed_model, cluster, seed_decode, capacity="l2")):
        again = plan_from_dict(json.loads(plan.to_json()))
        assert again == plan
        assert again.to_dict() == plan.to_dict()
        path = tmp_path / f"{plan.partitioner}.json"
        path.write_text(plan.to_json())
        assert load_plan_json(path) == plan


def test_plan_from_dict_rejects(tiny_model: ModelSpec, tmp_path: Path) -> None:
    raw = make_plan(tiny_model, [(0, 4, ("gpu0",))]).to_dict()
    err = error_of(plan_from_dict, {**raw, "schema_version": PLAN_SCHEMA_VERSION + 1})
    assert err.field == "plan.schema_version" and f"{PLAN_SCHEMA_VERSION + 1}" in err.message
    assert error_of(plan_from_dict, {k: v for k, v in raw.items() if k != "schema_version"}).field == (
        "plan.schema_version")
    err = error_of(plan_from_dict, {k: v for k, v in raw.items() if k != "stages"})
    assert (err.field, err.message) == ("plan.stages", "Field required")
    err = error_of(plan_from_dict, {**raw, "microbatches": "many"})
    assert (err.field, err.message) == ("plan.microbatches", "Input should be a valid integer, got 'many'")
    tampered = json.loads(json.dumps(raw))
    tampered["stages"][0]["layer_stop"] = 3
    assert error_of(plan_from_dict, tampered).message == "layer 3 is in no stage"
    tampered["stages"][0].update(layer_stop=4, tp_degree=0, devices=[])
    assert error_of(plan_from_dict, tampered).field == "plan.stages[0].tp_degree"
    assert error_of(plan_from_dict, [raw]).field == "plan"  # type: ignore[arg-type]
    assert error_of(load_plan_json, tmp_path / "none.json").field == "plan.file"
    (tmp_path / "bad.json").write_text("{not json")
    assert "is not valid JSON" in error_of(load_plan_json, tmp_path / "bad.json").message


def test_footprint_counts() -> None:
    fp = Footprint(weights_bytes=5, kv_cache_bytes=7, activation_bytes=11)
    assert (fp.counted_bytes("weights"), fp.counted_bytes("weights+kv"),
            fp.counted_bytes("weights+kv+activations"), fp.total_bytes) == (5, 12, 23, 23)


def test_stage_footprint_seed(seed_model: ModelSpec, seed_decode: Workload) -> None:
    # TP8 x PP2, 8 microbatches of 16: 8 layers per device, KV of all 128 sequences
    fp = stage_footprint(seed_model, 8, 8, seed_decode, 8)
    assert fp.weights_bytes == 8 * (268_435_456 // 8 + 8192) * 2
    assert fp.kv_cache_bytes == 8 * 128 * 10000 * 2 * 4096 * 2 // 8
    # one microbatch in flight: 16 tokens x (widest GEMM in + out = 4096 + 32768/8, + hidden 4096) x 2 B
    assert fp.activation_bytes == 16 * (4096 + 4096 + 4096) * 2
    lw = stage_footprint(seed_model, 1, 1, seed_decode, 1)
    assert lw.weights_bytes == 536_887_296
    assert lw.kv_cache_bytes == 128 * 10000 * 2 * 4096 * 2
    assert lw.activation_bytes == 128 * (4096 + 32768 + 4096) * 2
