"""The experiment file: shipped examples, --set overrides, errors that name the field, plan sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from topology.errors import LayerwiseError
from topology.experiment import (
    apply_overrides,
    build_plan,
    build_plans,
    experiment_from_dict,
    experiment_names,
    load_experiment,
    read_experiment_raw,
)
from topology.partition import partition_tp_pp

REPO = Path(__file__).resolve().parents[2]
TINY: dict[str, Any] = {
    "name": "tiny",
    "model": "tiny-test",
    "cluster": {"nodes": 1, "gpus_per_node": 4, "gpu": "h100-sxm", "intra_node_link": "nvlink4"},
    "workload": {"phase": "decode", "batch_size": 8, "context_len": 16, "warmup_iters": 0, "measured_iters": 1},
    "plans": {"tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1}},
}


def field_of(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(LayerwiseError) as info:
        fn(*args, **kwargs)
    return info.value.field


@pytest.mark.parametrize("name", experiment_names(serving=False))
def test_shipped_experiments_build_every_plan(name: str) -> None:
    experiment = load_experiment(name)
    plans = build_plans(experiment)
    assert list(plans) == experiment.plan_names and plans
    for plan in plans.values():
        assert plan.model == experiment.model
        assert plan.cluster_name == experiment.cluster.name


def test_examples_folder_matches_the_shipped_copies() -> None:
    shipped = {name: (REPO / "topology/data/experiments" / f"{name}.yaml").read_text() for name in experiment_names()}
    for path in sorted((REPO / "examples").glob("*.yaml")):
        assert shipped.get(path.stem) == path.read_text(), path.name
        assert read_experiment_raw(str(path))[0] == read_experiment_raw(path.stem)[0]


def test_seed_experiment() -> None:
    experiment = load_experiment("seed-16xh100")
    assert experiment.plan_names == ["baseline", "layer-wise"]
    assert experiment.paper_claims_tokens_per_s == {"baseline": 12800.0, "layer-wise": 15360.0}
    w = experiment.workload
    assert (w.phase, w.batch_size, w.context_len, w.cuda_graphs) == ("decode", 128, 10000, True)
    plans = build_plans(experiment)
    assert plans["baseline"].describe() == "tp-pp TP8xPP2 mb=8"
    assert plans["layer-wise"].describe() == "layer-wise TP1xPP16 mb=1"
    record = experiment.to_dict()
    assert record["model"]["hidden_size"] == 4096 and record["cluster"]["gpu"] == "h100-sxm"
    assert json.loads(json.dumps(record)) == record


def test_set_overrides() -> None:
    experiment = load_experiment("seed-16xh100", [
        "workload.batch_size=64", "plans.baseline.microbatches=16", "cluster=seed-16xh100-nvl16",
        "workload.cuda_graphs=false", "description=a  b=c",
    ])
    assert experiment.workload.batch_size == 64 and experiment.workload.cuda_graphs is False
    assert experiment.plan_specs["baseline"]["microbatches"] == 16
    assert experiment.cluster.name == "seed-16xh100-nvl16"
    assert experiment.description == "a  b=c"
    assert build_plan(experiment, "baseline").microbatches == 16


def test_apply_overrides_parses_yaml_and_copies() -> None:
    raw: dict[str, Any] = {"a": {"b": 1}, "s": "x"}
    out = apply_overrides(raw, ["a.b=2", "a.c=[1, 2]", "new.deep.key=on", "s=hello world", "t=1e3", "u="])
    assert out == {"a": {"b": 2, "c": [1, 2]}, "s": "hello world", "new": {"deep": {"key": True}},
                   "t": "1e3", "u": None}
    assert raw == {"a": {"b": 1}, "s": "x"}  # the input is not modified
    assert apply_overrides({"a": "preset"}, ["a.b=1"]) == {"a": {"b": 1}}
    for bad in ("novalue", "=3", "..=3"):
        assert field_of(apply_overrides, {}, [bad]) == "--set"


@pytest.mark.parametrize(("change", "field"), [
    ({"colour": "red"}, "experiment"),
    ({"model": None}, "model"),
    ({"model": {"num_layers": 2}}, "model.hidden_size"),
    ({"model": "gpt-5"}, "model"),
    ({"cluster": {"nodes": 1}}, "cluster.gpus_per_node"),
    ({"workload": [1, 2]}, "workload"),
    ({"workload": {"phase": "train", "batch_size": 8, "context_len": 4}}, "workload.phase"),
    ({"workload": {"phase": "decode", "batch_size": 8}}, "workload.context_len"),
    ({"workload": {"phase": "decode", "context_len": 8}}, "workload.batch_size"),
    ({"workload": {"phase": "decode", "batch_size": 8, "context_len": 4, "speed": 1}}, "workload"),
    ({"workload": {"phase": "decode", "batch_size": 8, "context_len": 4, "cuda_graphs": "yes"}},
     "workload.cuda_graphs"),
    ({"plans": {}}, "plans"),
    ({"plans": {"x": "tp-pp"}}, "plans.x"),
    ({"plans": {"x": {"partitioner": "zigzag"}}}, "plans.x.partitioner"),
    ({"plans": {"x": {"partitioner": "tp-pp", "tp": 2}}}, "plans.x.pp"),
    ({"plans": {"x": {"partitioner": "tp-pp", "tp": 2, "pp": 1, "capacity": "l2"}}}, "plans.x.capacity"),
    ({"plans": {"x": {"partitioner": "cache-fit", "tp": 2}}}, "plans.x.tp"),
    ({"plans": {"x": {"file": "a.json", "tp": 2}}}, "plans.x"),
    ({"plan": {"partitioner": "optimal"}}, "plans"),  # both plan: and plans:
    ({"paper_claims_tokens_per_s": [1]}, "paper_claims_tokens_per_s"),
    ({"paper_claims_tokens_per_s": {"tp2": "fast"}}, "paper_claims_tokens_per_s.tp2"),
])
def test_bad_experiment_fields_are_named(change: dict[str, Any], field: str) -> None:
    raw = {**TINY, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    assert field_of(experiment_from_dict, raw) == field


def test_missing_sections() -> None:
    for key in ("model", "cluster", "workload", "plans"):
        raw = {k: v for k, v in TINY.items() if k != key}
        assert field_of(experiment_from_dict, raw) == key


@pytest.mark.parametrize(("args", "field"), [
    ({"partitioner": "tp-pp", "tp": "two", "pp": 1}, "plans.x.tp"),
    ({"partitioner": "tp-pp", "tp": 3, "pp": 1}, "tp"),
    ({"partitioner": "tp-pp", "tp": 2, "pp": 1, "microbatches": 1.5}, "plans.x.microbatches"),
    ({"partitioner": "cache-fit", "capacity": "huge"}, "capacity"),
    ({"partitioner": "cache-fit", "counts": "kv"}, "counts"),
    ({"partitioner": "cache-fit", "num_devices": True}, "plans.x.num_devices"),
    ({"partitioner": "min-max-bytes", "max_devices": 99}, "max_devices"),
])
def test_bad_partitioner_arguments(args: dict[str, Any], field: str) -> None:
    assert field_of(lambda: build_plan(experiment_from_dict({**TINY, "plans": {"x": args}}), "x")) == field


def test_single_plan_and_every_partitioner() -> None:
    single = {k: v for k, v in TINY.items() if k != "plans"}
    experiment = experiment_from_dict({**single, "plan": {"partitioner": "min-max-bytes", "max_devices": 2}})
    assert experiment.plan_names == ["plan"]
    assert build_plan(experiment, "plan").num_devices <= 2
    assert field_of(build_plan, experiment, "nope") == "plan"
    experiment = experiment_from_dict({**TINY, "plans": {
        "cf": {"partitioner": "cache-fit", "capacity": "1e6", "counts": "weights+kv", "num_devices": 2},
        "bytes": {"partitioner": "min-max-bytes"},
    }})
    plans = build_plans(experiment)
    assert plans["cf"].fit_counts == "weights+kv" and plans["cf"].fit_capacity_bytes == 1_000_000
    assert plans["bytes"].partitioner == "min-max-bytes"


def test_optimal_needs_the_simulators_search() -> None:
    experiment = experiment_from_dict({**TINY, "plans": {
        "best": {"partitioner": "optimal", "gpus": 2, "max_tpot_ms": 5, "family": "layer-wise"}}})
    with pytest.raises(LayerwiseError, match="layerwise search EXPERIMENT --out") as info:
        build_plan(experiment, "best")
    assert info.value.field == "plans.best.partitioner"
    fixed = partition_tp_pp(experiment.model, experiment.cluster, experiment.workload, tp=1, pp=2)
    seen: list[tuple[str, dict[str, object]]] = []

    def optimizer(e, name, args):  # type: ignore[no-untyped-def]
        seen.append((name, args))
        return fixed

    assert build_plan(experiment, "best", optimizer) is fixed
    assert seen == [("best", {"gpus": 2, "max_tpot_ms": 5.0, "family": "layer-wise"})]  # checked by the search


def test_plan_from_file(tmp_path: Path) -> None:
    base = experiment_from_dict(TINY)
    plan = partition_tp_pp(base.model, base.cluster, base.workload, tp=1, pp=4, microbatches=4)
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "pp4.json").write_text(plan.to_json())
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(yaml.safe_dump({**TINY, "plans": {"saved": {"file": "plans/pp4.json"}},
                                        "profile": "profiles/p.json"}))
    experiment = load_experiment(str(exp_file))
    assert build_plan(experiment, "saved") == plan
    assert experiment.profile_path == str(tmp_path / "profiles" / "p.json")
    assert experiment.name == "tiny"
    other = load_experiment(str(exp_file), ["model=small-1024"])
    assert field_of(build_plan, other, "saved") == "plans.saved.file"
    missing = load_experiment(str(exp_file), ["plans.saved.file=none.json"])
    assert field_of(build_plan, missing, "saved") == "plan.file"


def test_unknown_experiment_and_bad_yaml(tmp_path: Path) -> None:
    assert field_of(load_experiment, "no-such-experiment") == "experiment"
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    assert field_of(load_experiment, str(bad)) == str(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    assert field_of(load_experiment, str(listy)) == str(listy)
