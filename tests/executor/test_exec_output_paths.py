"""``layerwise run`` and each worker check their output paths before any work (issue 13)."""

from __future__ import annotations

import pytest

from executor.worker import main as worker_main
from layerwise.cli import main

ONE_DEVICE = ["--set", "plans.one={partitioner: tp-pp, tp: 1, pp: 1, microbatches: 1}", "--plan", "one"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--json", "/proc/nope/r.json"], "--json: cannot write '/proc/nope/r.json'"),
    (["--json", "."], "--json: '.' is a folder; give a file name"),
    (["--trace", "/proc/nope/t.json"], "--trace: cannot write '/proc/nope/t.rank0.json'"),
    (["--dump-outputs", "/proc/nope/d.pt"], "--dump-outputs: cannot write '/proc/nope/d.pt'"),
])
def test_run_refuses_an_unwritable_output_before_launch(capsys: pytest.CaptureFixture[str], flags: list[str],
                                                        message: str) -> None:
    assert main(["run", "tiny-cpu", "--plan", "pp2", *flags]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"layerwise run: error: {message}"), captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""  # nothing launched


def test_the_worker_checks_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert worker_main(["tiny-cpu", *ONE_DEVICE, "--json", "/proc/nope/r.json"]) == 2
    assert capsys.readouterr().err.startswith("executor: error: --json: cannot write '/proc/nope/r.json'")
