"""Results and profile schemas: write/load round trips, atomic writes, version checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from topology import atomic_io
from topology.atomic_io import write_bytes_atomic, write_json_atomic, write_text_atomic
from topology.errors import LayerwiseError
from topology.experiment import build_plan, load_experiment
from topology.profile import (
    PROFILE_SCHEMA_VERSION,
    AttentionPoint,
    CollectiveFit,
    GemmPoint,
    HardwareProfile,
    ProfileParams,
    load_profile,
    profile_from_dict,
    write_profile,
)
from topology.results import (
    RESULT_SCHEMA_VERSION,
    Breakdown,
    Communication,
    DeviceUse,
    Metrics,
    RunResult,
    SimulationDetails,
    StageMetrics,
    StageResidency,
    load_result,
    result_from_dict,
    write_result,
)


def sample_result() -> RunResult:
    experiment = load_experiment("tiny-cpu")
    plan = build_plan(experiment, "pp2")
    metrics = Metrics(
        tokens_per_s=1234.5, step_time_s=0.0065, tpot_s=0.0065, ttft_s=None, microbatches=2, plan_label=plan.describe(),
        stages=(StageMetrics(0, ("gpu0",), 0.003, 0.0005, 0.001), StageMetrics(1, ("gpu1",), 0.003, 0.0, 0.0015)),
        simulation=SimulationDetails(
            estimator="events",
            breakdown=Breakdown(1, 0.0, 0.001, 0.002, 0.0001, 0.0, 0.0005, 0.0029),
            communication=Communication(0.0, 0.0, 2.0, 2.0, 2.0, 4096.0, 4096.0),
            residency=(StageResidency(0, 1000, 500, 3e7, False, 1.0), StageResidency(1, 1000, 500, 3e7, False, 1.0)),
            devices=(DeviceUse("gpu0", 0, 0.5, 0.4, 0.1, 0.5, 1e6, 1e3, 1.0),),
            sim_params={"hbm_efficiency": 0.9}, simulated_iterations=7, skipped_iterations=10),
    )
    return RunResult(source="sim", experiment=experiment.to_dict(), plan_name="pp2", plan=plan.to_dict(),
                     metrics=metrics, environment={"python": "3.11"})


def sample_profile() -> HardwareProfile:
    params = ProfileParams(
        hbm_bw_bytes_per_s=3.0e12, matmul_flops_per_s=7.0e14, l2_usable_bytes=30_000_000,
        launch_overhead_graph_s=1.2e-6,
        collectives=(CollectiveFit("allreduce", 2, 8e-6, 3e11), CollectiveFit("allreduce", 8, 2e-5, 3.6e11),
                     CollectiveFit("sendrecv", 2, 5e-6, 4e11)),
        gemm_points=(GemmPoint(128, 12288, 4096, 2.1e-5),),
        attention_points=(AttentionPoint(16, 32, 32, 128, 1, 10000, 1.3e-4),),
        sim_params={"hbm_efficiency": 0.85},
    )
    return HardwareProfile(gpu_name="H100-SXM5-80GB", gpu_count=8, params=params,
                           environment={"torch": "2.13"}, raw={"copy": [1, 2, 3]})


def test_result_round_trip(tmp_path: Path) -> None:
    result = sample_result()
    path = write_result(tmp_path / "out" / "r.json", result)
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]  # no temp files left
    again = load_result(path)
    assert again == result
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == RESULT_SCHEMA_VERSION and raw["source"] == "sim"
    assert set(raw["metrics"]) >= {"tokens_per_s", "step_time_s", "tpot_s", "ttft_s", "stages", "simulation"}
    assert again.metrics.breakdown is not None and again.metrics.breakdown.dominant == "bubble"
    assert again.metrics.simulation is not None and again.metrics.simulation.l2_fit == "all stages fit"


def test_a_version_1_hardware_result_still_loads() -> None:
    """Results saved by the first session (schema 1, an untyped ``extra``) read into the typed fields."""
    old = Path(__file__).parents[2] / "results" / "hardware" / "h100x1" / "small-b64-c128-mb1-eager.json"
    result = load_result(old)
    hardware = result.metrics.hardware
    assert hardware is not None and hardware.cuda_graphs is False and hardware.backend == "nccl"
    assert len(hardware.ranks) == 1 and hardware.ranks[0].step_time_s > 0
    assert result.metrics.plan_label.endswith("mb=1") and result.schema_version == RESULT_SCHEMA_VERSION


def test_result_rejects(tmp_path: Path) -> None:
    raw = sample_result().to_dict()
    with pytest.raises(LayerwiseError) as info:
        result_from_dict({**raw, "schema_version": 3})
    assert info.value.field == "result.schema_version"
    with pytest.raises(LayerwiseError) as info:
        result_from_dict({**raw, "source": "guess"})
    assert info.value.field == "result.source"
    with pytest.raises(LayerwiseError) as info:
        result_from_dict({k: v for k, v in raw.items() if k != "metrics"})
    assert (info.value.field, info.value.message) == ("result.metrics", "Field required")
    with pytest.raises(LayerwiseError) as info:
        result_from_dict({**raw, "metrics": {**raw["metrics"], "tokens_per_s": "fast"}})
    assert info.value.field == "result.metrics.tokens_per_s"
    with pytest.raises(LayerwiseError):
        load_result(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("[")
    with pytest.raises(LayerwiseError, match="not valid JSON"):
        load_result(tmp_path / "bad.json")


def test_profile_round_trip(tmp_path: Path) -> None:
    profile = sample_profile()
    path = write_profile(tmp_path / "p.json", profile)
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]
    assert load_profile(path) == profile
    assert json.loads(path.read_text())["schema_version"] == PROFILE_SCHEMA_VERSION


def test_profile_collective_lookup() -> None:
    params = sample_profile().params
    assert params.collective("allreduce", 8) == CollectiveFit("allreduce", 8, 2e-5, 3.6e11)
    assert params.collective("allreduce", 4) == CollectiveFit("allreduce", 8, 2e-5, 3.6e11)  # next larger
    assert params.collective("allreduce", 16) == CollectiveFit("allreduce", 8, 2e-5, 3.6e11)  # largest
    assert params.collective("sendrecv", 2) is not None
    assert params.collective("allgather", 2) is None
    assert ProfileParams().collective("allreduce", 2) is None


def test_profile_rejects(tmp_path: Path) -> None:
    raw = sample_profile().to_dict()
    for bad, field in (({**raw, "schema_version": 0}, "profile.schema_version"),
                       ({k: v for k, v in raw.items() if k != "gpu_name"}, "profile.gpu_name"),
                       ({**raw, "params": {"collectives": [{"op": "allreduce"}]}},
                        "profile.params.collectives[0].group_size")):
        with pytest.raises(LayerwiseError) as info:
            profile_from_dict(bad)
        assert info.value.field == field
    with pytest.raises(LayerwiseError):
        load_profile(tmp_path / "none.json")


def test_atomic_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "deep" / "f.txt"
    write_text_atomic(target, "one")
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    write_json_atomic(tmp_path / "j.json", {"b": 1, "a": [1]})
    assert (tmp_path / "j.json").read_text() == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}\n'

    def failing_replace(src: str, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic_io.os, "replace", failing_replace)
    with pytest.raises(LayerwiseError, match="disk full"):
        write_text_atomic(target, "two")
    assert target.read_text() == "one"  # the old file is intact
    assert os.listdir(target.parent) == ["f.txt"]  # and no temp file is left


def test_atomic_write_to_a_folder_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(LayerwiseError, match="cannot write") as info:
        write_text_atomic(tmp_path, "x")
    assert info.value.field == "output"
    assert os.listdir(tmp_path) == []  # no temp file left beside it


def test_atomic_write_gives_a_normal_file_mode(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        atomic_io._umask.cache_clear()
        written = write_text_atomic(tmp_path / "r.json", "{}")
    finally:
        os.umask(mask)
        atomic_io._umask.cache_clear()
    assert written.stat().st_mode & 0o777 == 0o644  # readable by others, as open() would make it


@pytest.mark.parametrize("loader", [load_profile, load_result, load_experiment])
def test_unreadable_inputs_are_one_line_errors(tmp_path: Path, loader: object) -> None:
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    listed = tmp_path / "list.json"
    listed.write_text("[1]")
    for path, message in ((tmp_path, "is not a regular file"), (binary, "not UTF-8"), (listed, "must")):
        with pytest.raises(LayerwiseError, match=message):
            loader(str(path))  # type: ignore[operator]
