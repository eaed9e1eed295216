"""``layerwise calibrate`` checks its profile and plot paths before measuring anything (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

import layerwise.commands.calibrate as calibrate_cli
from layerwise.cli import main


@pytest.mark.parametrize(("flags", "message"), [
    (["--out", "/proc/nope/p.json"], "--out: cannot write '/proc/nope/p.json'"),
    (["--out", "."], "--out: '.' is a folder"),
    (["--plot-only", "/proc/nope/p.json"], "--plot-only: cannot write '/proc/nope/p.png'"),
])
def test_unwritable_outputs_are_refused_before_measuring(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], flags: list[str],
                                                         message: str) -> None:
    def no_measuring(args: object) -> None:
        raise AssertionError("measured before checking the output paths")

    monkeypatch.setattr(calibrate_cli, "calibrate", no_measuring)
    assert main(["calibrate", "--device", "cpu", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"layerwise calibrate: error: {message}") and err.count("\n") == 1, err


def test_the_plot_beside_the_profile_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(calibrate_cli, "calibrate", lambda args: pytest.fail("measured first"))
    (tmp_path / "p.png").mkdir()  # a folder where the plot would go
    assert main(["calibrate", "--device", "cpu", "--out", str(tmp_path / "p.json"), "--plot"]) == 2
    assert "--plot: " in capsys.readouterr().err
