"""``layerwise plan``: flags that would be silently ignored, bad lengths named as the flag, --out checked first."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerwise.cli import main

AD_HOC = ["--model", "seed-dense-16", "--cluster", "seed-16xh100"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--tp", "8"], "--tp: applies to an ad-hoc plan: give --partitioner tp-pp"),
    (["seed-16xh100", "--pp", "4"], "--pp: applies to an ad-hoc plan"),
    (["--capacity", "sram"], "--capacity: applies to an ad-hoc plan: give --partitioner cache-fit"),
    (["--microbatches", "4"], "--microbatches: applies to an ad-hoc plan"),
    ([*AD_HOC, "--partitioner", "cache-fit", "--tp", "2"], "--tp: is not an argument of --partitioner cache-fit"),
    ([*AD_HOC, "--partitioner", "tp-pp", "--counts", "weights"], "--counts: is not an argument of --partitioner"),
    (["--context", "-5"], "--context: must be a positive integer, got -5"),
    ([*AD_HOC, "--partitioner", "optimal", "--context", "0"], "--context: must be a positive integer, got 0"),
    (["--batch", "-1"], "--batch: must be a positive integer, got -1"),
    ([*AD_HOC, "--partitioner", "tp-pp", "--tp", "8", "--pp", "0"], "--pp: must be a positive integer, got 0"),
    (["--plan", "baseline", "--out", "/proc/nope/plan.json"], "--out: cannot write '/proc/nope/plan.json'"),
    (["--out", "/proc/nope"], "--out: cannot write '/proc/nope'"),
])
def test_refused_with_one_line_naming_the_flag(capsys: pytest.CaptureFixture[str], argv: list[str],
                                               message: str) -> None:
    assert main(["plan", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"layerwise plan: error: {message}"), captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert captured.out == ""  # refused before any table is printed


def test_out_onto_a_folder_for_one_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "p.json"
    folder.mkdir()
    assert main(["plan", "--plan", "baseline", "--out", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err
