"""Loading measured results: experiments and plans rebuilt exactly as they ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from topology.errors import LayerwiseError
from topology.experiment import build_plan, load_experiment
from topology.results import HardwareDetails, Metrics, RunResult, write_result
from validate.measured import experiment_from_record, load_measurements, with_iterations


def _result(experiment_name: str, plan_name: str, source: str = "hardware",
            overrides: list[str] | None = None, graphs: bool | None = None) -> RunResult:
    experiment = load_experiment(experiment_name, overrides or [])
    plan = build_plan(experiment, plan_name)
    hardware = None if graphs is None else HardwareDetails(
        backend="gloo", cuda_graphs=graphs, dtype="float32", kv_fill="seeded", kv_capacity_tokens=16,
        sdpa_backend="auto", communication_timing="eager")
    return RunResult(source=source, experiment=experiment.to_dict(), plan_name=plan_name, plan=plan.to_dict(),
                     metrics=Metrics(1.0, 1e-3, 1e-3, None, plan.microbatches, plan.describe(), hardware=hardware),
                     environment={})


@pytest.mark.parametrize("name", ["small-h100x1", "tiny-cpu", "seed-16xh100"])
def test_recorded_experiment_rebuilds_identically(name: str) -> None:
    original = load_experiment(name)
    rebuilt = experiment_from_record(original.to_dict())
    assert rebuilt.model == original.model
    assert rebuilt.workload == original.workload
    assert rebuilt.cluster.to_dict() == original.cluster.to_dict()
    assert rebuilt.plan_specs == original.plan_specs
    assert rebuilt.profile_path is None


def test_loader_keeps_hardware_results_only(tmp_path: Path) -> None:
    write_result(tmp_path / "a" / "tp2.json", _result("tiny-cpu", "tp2"))
    write_result(tmp_path / "a" / "again.json", _result("tiny-cpu", "tp2"))
    write_result(tmp_path / "b" / "sim.json", _result("tiny-cpu", "pp2", source="sim"))
    (tmp_path / "b" / "trace.json").write_text(json.dumps([{"ph": "X"}]))
    (tmp_path / "b" / "other.json").write_text(json.dumps({"schema_version": 1, "gpu_name": "x"}))
    measurements = load_measurements([str(tmp_path)])
    assert sorted(m.key for m in measurements) == ["a/again", "a/tp2"]  # folder/file stem
    m = measurements[0]
    assert m.plan.to_dict() == build_plan(load_experiment("tiny-cpu"), "tp2").to_dict()
    assert m.group_key == measurements[1].group_key


def test_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(LayerwiseError, match="no hardware results"):
        load_measurements([str(tmp_path)])
    with pytest.raises(LayerwiseError, match="no such file"):
        load_measurements([str(tmp_path / "nothing")])


def test_with_iterations_changes_only_iterations() -> None:
    experiment = load_experiment("small-h100x1")
    short = with_iterations(experiment, 2, 10)
    assert (short.workload.warmup_iters, short.workload.measured_iters) == (2, 10)
    assert short.workload.batch_size == experiment.workload.batch_size and short.model == experiment.model


def test_with_iterations_keeps_the_middle_context_of_a_growing_run() -> None:
    experiment = load_experiment("small-h100x1", ["workload.context_growth=grow", "workload.context_len=100",
                                                  "workload.warmup_iters=10", "workload.measured_iters=50"])
    short = with_iterations(experiment, 2, 10)
    assert short.workload.context_len + 2 + 5 == 100 + 10 + 25


def test_validation_simulates_the_gpu_that_ran() -> None:
    """A result whose experiment names an H100 cluster but whose environment reports an H200."""
    from topology.experiment import load_experiment

    recorded = load_experiment("small-h100x1").to_dict()
    experiment = experiment_from_record(recorded, "NVIDIA H200")
    assert experiment.cluster.gpu.name == "H200-SXM-141GB" and experiment.cluster.name == "h200x1"
    assert experiment_from_record(recorded, "NVIDIA H100 80GB HBM3").cluster.name == "h100x1"
    assert experiment_from_record(recorded, None).cluster.gpu.name == "H100-SXM5-80GB"


def test_repeated_runs_share_a_configuration_key(tmp_path: Path) -> None:
    write_result(tmp_path / "a" / "tp2.json", _result("tiny-cpu", "tp2"))
    write_result(tmp_path / "b" / "tp2.json", _result("tiny-cpu", "tp2"))
    write_result(tmp_path / "a" / "pp2.json", _result("tiny-cpu", "pp2"))
    by_key = {m.key: m.config_key for m in load_measurements([str(tmp_path)])}
    assert by_key["a/tp2"] == by_key["b/tp2"]
    assert by_key["a/tp2"] != by_key["a/pp2"]


def test_a_twin_that_ran_fewer_iterations_is_the_same_configuration(tmp_path: Path) -> None:
    """A profiled twin (fewer iterations) held out apart from its configuration would leak it into the fit."""
    write_result(tmp_path / "a" / "tp2.json", _result("tiny-cpu", "tp2"))
    write_result(tmp_path / "a" / "tp2-traced.json", _result("tiny-cpu", "tp2", overrides=[
        "workload.warmup_iters=3", "workload.measured_iters=5"]))
    # a growing context is keyed by its middle context, 16 + 1 + 3 // 2 = 18 = 15 + 1 + 4 // 2 (both
    # runs end at context 20, so their plans hold the same KV capacity)
    write_result(tmp_path / "a" / "grow.json", _result("tiny-cpu", "tp2", overrides=[
        "workload.context_growth=grow", "workload.context_len=16", "workload.prompt_len=8", "workload.warmup_iters=1",
        "workload.measured_iters=3"]))
    write_result(tmp_path / "a" / "grow-later.json", _result("tiny-cpu", "tp2", overrides=[
        "workload.context_growth=grow", "workload.context_len=15", "workload.prompt_len=8", "workload.warmup_iters=1",
        "workload.measured_iters=4"]))
    by_key = {m.key: m.config_key for m in load_measurements([str(tmp_path)])}
    assert by_key["a/tp2"] == by_key["a/tp2-traced"]
    assert by_key["a/grow"] == by_key["a/grow-later"] != by_key["a/tp2"]


def test_validation_simulates_the_launch_mode_that_ran(tmp_path: Path) -> None:
    """The workload asked for CUDA graphs, but the executor ran prefill eagerly and recorded
    ``cuda_graphs: false``: the run is re-simulated with eager launches."""
    graphs = ["workload.cuda_graphs=true"]
    prefill = [*graphs, "workload.phase=prefill", "workload.prompt_len=16", "workload.context_len=16"]
    write_result(tmp_path / "a" / "prefill.json", _result("tiny-cpu", "tp2", overrides=prefill,
                                                          graphs=False))
    write_result(tmp_path / "a" / "graph.json", _result("tiny-cpu", "tp2", overrides=graphs,
                                                        graphs=True))
    write_result(tmp_path / "a" / "unrecorded.json", _result("tiny-cpu", "tp2", overrides=graphs))
    by_key = {m.key: m for m in load_measurements([str(tmp_path)])}
    assert by_key["a/prefill"].experiment.workload.cuda_graphs is False
    assert by_key["a/prefill"].cuda_graphs is False and by_key["a/prefill"].regime == "prefill"
    assert by_key["a/graph"].experiment.workload.cuda_graphs is True
    assert by_key["a/unrecorded"].experiment.workload.cuda_graphs is True  # as asked: nothing recorded
