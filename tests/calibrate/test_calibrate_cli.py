"""``layerwise calibrate`` end to end on a CPU (the plumbing, not the numbers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import executor.calibrate.run as calibrate_run
from layerwise.cli import main
from topology.profile import load_profile


def test_cpu_quick_run_writes_a_loadable_profile(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    assert main(["calibrate", "--device", "cpu", "--quick", "--out", str(out), "--plot"]) == 0
    profile = load_profile(out)
    params = profile.params
    assert params.hbm_bw_bytes_per_s and params.hbm_bw_bytes_per_s > 0
    assert params.matmul_flops_per_s and params.matmul_flops_per_s > 0
    assert params.launch_overhead_eager_s is not None
    assert params.launch_overhead_graph_s is None  # no CUDA graphs on a CPU
    assert {(p.n, p.k) for p in params.gemm_points} >= {(128, 64), (64, 64), (256, 64), (64, 128)}  # tiny-test
    assert {p.m for p in params.gemm_points} == {1, 4, 64}
    assert any(p.new_tokens == 1 for p in params.attention_points)
    assert any(p.new_tokens > 1 for p in params.attention_points)
    assert params.collectives == ()
    assert profile.raw["collectives"] == {"skipped": "not measured: 1 GPU"}
    for section in ("launch", "hbm", "l2", "gemm", "attention"):
        assert "error" not in profile.raw[section], profile.raw[section]
    for key in ("torch", "hostname", "date_utc", "git_commit", "gpu_name"):
        assert profile.environment[key]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failing_section_is_recorded_and_the_rest_still_measured(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise RuntimeError("simulated CUDA out of memory")

    monkeypatch.setattr(calibrate_run, "measure_hbm", broken)
    out = tmp_path / "p.json"
    assert main(["calibrate", "--device", "cpu", "--quick", "--only", "launch,hbm,gemm", "--out", str(out)]) == 0
    profile = load_profile(out)
    assert "simulated CUDA out of memory" in profile.raw["hbm"]["error"]
    assert profile.params.hbm_bw_bytes_per_s is None
    assert profile.params.gemm_points  # measured after the failure
    assert profile.params.launch_overhead_eager_s is not None


def test_unknown_section_and_model_are_user_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "p.json")
    assert main(["calibrate", "--device", "cpu", "--only", "disk", "--out", out]) == 2
    assert main(["calibrate", "--device", "cpu", "--model", "no-such-model", "--out", out]) == 2


@pytest.mark.slow
def test_collectives_under_torchrun_with_gloo(tmp_path: Path) -> None:
    """The plumbing of two ranks under torchrun. On a busy CPU a fit can be latency-bound and is then
    rejected (exit 1, the reason recorded): each collective is either fitted or named as rejected."""
    out = tmp_path / "p.json"
    code = main(["calibrate", "--device", "cpu", "--quick", "--gpus", "2", "--only", "collectives", "--out", str(out)])
    profile = load_profile(out)
    fitted = {(c.op, c.group_size) for c in profile.params.collectives}
    rejected = json.dumps(profile.raw.get("rejected", {}))
    for op in ("allreduce", "sendrecv"):
        assert (op, 2) in fitted or f"collectives.{op}/2" in rejected, (op, rejected)
    assert code == (0 if len(fitted) == 2 else 1)
    assert all(c.latency_s > 0 and c.bw_bytes_per_s > 0 for c in profile.params.collectives)
    samples = profile.raw["collectives"]["samples"]
    assert {s["nbytes"] for s in samples} == {1024, 64 * 1024, 4 * 1024 * 1024}
    assert profile.raw["collectives"]["backend"] == "gloo"


def test_calibrate_imports_without_simpy_sim_validate_or_matplotlib() -> None:
    code = ("import sys\n"
            "for name in ('simpy', 'sim', 'validate', 'matplotlib'): sys.modules[name] = None\n"
            "import layerwise.commands.calibrate, executor.calibrate.run, executor.calibrate.collectives, "
            "executor.calibrate.fit, executor.calibrate.plots")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plot_only_renders_an_existing_profile(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    assert main(["calibrate", "--device", "cpu", "--quick", "--only", "gemm", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["params"]["gemm_points"]
    assert main(["calibrate", "--plot-only", str(out)]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000
