"""``layerwise calibrate --only serving-host``: the serving loop on the tiny model, its host seconds
per iteration (sanity on a CPU: positive, below the whole iteration) in ``sim_params``."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.calibrate.serving_host import SIM_PARAM
from layerwise.cli import main
from topology.profile import load_profile


def test_serving_host_cost_is_written_for_the_simulator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "profile.json"
    assert main(["calibrate", "--device", "cpu", "--quick", "--only", "serving-host", "--out", str(out)]) == 0
    profile = load_profile(out)
    host_s = profile.params.sim_params[SIM_PARAM]
    raw = profile.raw["serving-host"]
    assert SIM_PARAM == "serving_iteration_host_s" and raw["host_s_per_iteration"] == host_s
    assert 0 < host_s < 0.05  # tens of microseconds to a few milliseconds of Python per iteration
    assert raw["iterations"] >= raw["requests"] == 12 and raw["attention"] == "per-request"
    assert 0 < raw["p50_s"] <= raw["p90_s"] and raw["forward_mean_s"] > 0
    assert raw["experiment"]["model"] == "tiny-test"
    assert f"{SIM_PARAM:<26}" in capsys.readouterr().out  # the summary table shows it
