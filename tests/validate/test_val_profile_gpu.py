"""``layerwise validate`` refuses a profile of another GPU than the runs', before any fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerwise.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "validate"
H200_PROFILE = Path(__file__).resolve().parents[2] / "results" / "profiles" / "h200x1.json"


def test_an_h200_profile_for_h100_runs_is_one_line_naming_both(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(["validate", str(DATA / "hardware"), "--profile", str(H200_PROFILE), "--out", str(out),
                 "--no-extrapolation"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "measured on 'NVIDIA H200'" in err and "H100-SXM5-80GB" in err
    assert not out.exists()  # nothing written
