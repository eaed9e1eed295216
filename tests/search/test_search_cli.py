"""`layerwise search` as a user runs it: table, JSON, plan file, plot, and the confirmation loop (gloo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from topology.plan import load_plan_json
from topology.results import load_result


def _layerwise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layerwise", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600, check=False)


@pytest.mark.slow
def test_search_writes_everything_and_confirms_on_cpu(tmp_path: Path) -> None:
    done = _layerwise("search", "tiny-cpu", "--top", "3", "--json", "search.json", "--out", "best.plan.json",
                      "--plot", "pareto.png", "--confirm", "2", "--confirm-out", "confirm", "--jobs", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "BEST:" in done.stdout and "UNCERTAINTY:" in done.stdout and "CONFIRM (gloo" in done.stdout
    summary = json.loads((tmp_path / "search.json").read_text())
    assert summary["ranked"][0]["events"]["estimator"] == "events"
    assert summary["space_size"] > 0 and summary["experiment"] == "tiny-cpu"
    best = load_plan_json(tmp_path / "best.plan.json")
    assert best.partitioner == "optimal"
    assert best.microbatches == summary["ranked"][0]["layout"]["microbatches"]
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    confirm = json.loads((tmp_path / "confirm" / "confirm.json").read_text())
    assert len(confirm["runs"]) == 2
    for run in confirm["runs"]:
        assert run["measured_tokens_per_s"] > 0, run
        result = load_result(tmp_path / "confirm" / f"rank{run['rank']}.result.json")
        assert result.source == "hardware" and result.metrics.tokens_per_s == run["measured_tokens_per_s"]
    assert "was the measured best" in done.stdout or "was NOT the measured best" in done.stdout


@pytest.mark.parametrize(("args", "field"), [
    (["--gpus", "0"], "--gpus"),
    (["--top", "0"], "--top"),
    (["--max-ttft-ms", "5"], "--max-ttft-ms"),
    (["--json", "/proc/nope/x.json"], "--json"),
    (["--out", "."], "--out"),
    (["--jobs", "0"], "--jobs"),
])
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], field: str) -> None:
    done = _layerwise("search", "tiny-cpu", "--no-plot", *args, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], done.stderr
    assert list(tmp_path.iterdir()) == []
