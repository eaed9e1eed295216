"""Unphysical calibration values are left out of the profile, with the field, value and reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import executor.calibrate.run as calibrate_run
from executor.calibrate.assemble import build_profile
from executor.calibrate.plots import size_label
from layerwise.cli import main

MiB = 2**20
H100_SHEET = {"dense_bf16_flops_per_s": 989.4e12, "hbm_bw_bytes_per_s": 3.35e12, "l2_capacity_bytes": 50 * MiB}


def _copy(buffer_bytes: int, bw_bytes_per_s: float) -> dict[str, Any]:
    return {"method": "copy:memcpy-graph", "kind": "copy", "buffer_bytes": buffer_bytes,
            "moved_bytes": 2 * buffer_bytes, "time_s": 2 * buffer_bytes / bw_bytes_per_s}


def test_a_copy_rate_above_the_datasheet_peak_is_rejected() -> None:
    raw = {"hbm": {"points": [_copy(256 * MiB, 2.9e12), _copy(1024 * MiB, 4.1e12)]}}  # 4.1 > 3.35 TB/s
    profile = build_profile(raw, "NVIDIA H100 80GB HBM3", 1, {"datasheet": H100_SHEET})
    assert profile.params.hbm_bw_bytes_per_s is None
    (rejected,) = profile.raw["rejected"]
    assert rejected["field"] == "params.hbm_bw_bytes_per_s"
    assert rejected["value"] == pytest.approx(4.1e12)
    assert "hbm_bw_bytes_per_s 3.35e+12" in rejected["reason"]


def test_a_physical_copy_rate_is_kept() -> None:
    raw = {"hbm": {"points": [_copy(256 * MiB, 2.9e12), _copy(1024 * MiB, 3.0e12)]}}
    profile = build_profile(raw, "NVIDIA H100 80GB HBM3", 1, {"datasheet": H100_SHEET})
    assert profile.params.hbm_bw_bytes_per_s == pytest.approx(3.0e12)
    assert "rejected" not in profile.raw


def test_usable_l2_larger_than_the_l2_is_rejected() -> None:
    points = [{"weight_bytes": s * MiB, "rows": 64, "hot_time_s": 1.0, "cold_time_s": 2.0} for s in (32, 64)]
    profile = build_profile({"l2": {"points": points}}, "NVIDIA H100 80GB HBM3", 1, {"datasheet": H100_SHEET})
    assert profile.params.l2_usable_bytes is None
    assert [r["field"] for r in profile.raw["rejected"]] == ["params.l2_usable_bytes"]


def test_a_collective_fit_on_latency_bound_messages_is_rejected() -> None:
    """Every message took 20 us whatever its size: the fitted bandwidth is only where the optimiser stopped."""
    samples = [{"op": "allreduce", "group_size": 2, "nbytes": b, "time_s": 20e-6} for b in (1024, 16384, 262144)]
    samples += [{"op": "sendrecv", "group_size": 2, "nbytes": b, "time_s": 5e-6 + b / 100e9}
                for b in (1024, 2**20, 2**28)]
    raw = {"collectives": {"samples": samples, "world_size": 2, "backend": "nccl"}}
    profile = build_profile(raw, "x", 2, {})
    assert [(c.op, c.group_size) for c in profile.params.collectives] == [("sendrecv", 2)]
    (rejected,) = profile.raw["rejected"]
    assert rejected["field"] == "collectives.allreduce/2" and "latency-bound" in rejected["reason"]


def test_calibrate_exits_non_zero_naming_the_rejected_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    def flat_launch(*args: object, **kwargs: object) -> dict[str, object]:  # bursts that do not grow
        return {"eager": [{"kernels": 20, "time_s": 1e-3}, {"kernels": 100, "time_s": 0.9e-3}]}

    monkeypatch.setattr(calibrate_run, "measure_launch", flat_launch)
    out = tmp_path / "p.json"
    assert main(["calibrate", "--device", "cpu", "--quick", "--only", "launch", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "params.launch_overhead_eager_s = 0 rejected: burst time did not grow" in err
    written = json.loads(out.read_text())
    assert written["params"]["launch_overhead_eager_s"] is None
    assert written["raw"]["rejected"][0]["field"] == "params.launch_overhead_eager_s"


def test_size_labels_do_not_round_small_caches_to_zero() -> None:
    """Issue 13: a CPU plot said "usable 0 MiB" for a 256 KiB cache."""
    assert size_label(256 * 1024) == "256 KiB"
    assert size_label(40 * MiB) == "40 MiB"
    assert size_label(3 * 2**30) == "3 GiB"
