"""``layerwise validate`` checks --out before loading or fitting anything (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

import validate.pipeline as validate_cli
from layerwise.cli import main


@pytest.mark.parametrize("out", ["/proc/nope/report", "FILE"])
def test_an_unwritable_out_is_refused_before_the_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], out: str) -> None:
    monkeypatch.setattr(validate_cli, "load_measurements", lambda paths: pytest.fail("loaded before the check"))
    if out == "FILE":
        out = str(tmp_path / "report.md")
        Path(out).write_text("a file where the report folder would go")
    assert main(["validate", str(tmp_path), "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerwise validate: error: --out: ") and err.count("\n") == 1, err


def test_a_shipped_profile_named_for_another_gpu_is_refused_before_the_fit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The sample runs are H100 runs; ``h200-sxm.json`` would be loaded by name for H200 clusters."""
    monkeypatch.setattr(validate_cli, "validate_measurements", lambda *a, **k: pytest.fail("fitted before the check"))
    sample = Path(__file__).resolve().parents[1] / "data" / "validate" / "hardware"
    ship = tmp_path / "h200-sxm.json"
    assert main(["validate", str(sample), "--out", str(tmp_path / "o"), "--ship-profile", str(ship)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("layerwise validate: error: --ship-profile: ") and err.count("\n") == 1, err
    assert "'h200-sxm'" in err and "H100" in err
    assert not ship.exists() and not (tmp_path / "o").exists()

