"""`layerwise simulate`: outputs checked first, traces named, the paper only where it made its claim,
long runs visible, Ctrl-C clean (the hardening issue's simulate cases)."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from layerwise.terminal.progress import ProgressLine


def _layerwise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layerwise", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, check=False)


def test_a_bad_output_path_stops_before_any_work(tmp_path: Path) -> None:
    for args in (["seed-16xh100", "--json", "/proc/nope/r.json"], ["--json", "."],
                 ["seed-16xh100", "--trace", "/proc/nope/t.json"]):
        done = _layerwise("simulate", *args, cwd=tmp_path)
        assert done.returncode == 2, args
        assert done.stdout == "" and done.stderr.count("\n") == 1, (args, done.stderr)
    assert list(tmp_path.iterdir()) == []


def test_traces_are_named_and_printed(tmp_path: Path) -> None:
    done = _layerwise("simulate", "tiny-cpu", "--plan", "pp2", "--trace", "t.json", cwd=tmp_path)
    assert done.returncode == 0 and "wrote t.json (trace of pp2" in done.stdout
    done = _layerwise("simulate", "tiny-cpu", "--trace", "t.json", cwd=tmp_path)
    for name in ("tp2", "pp2", "tp2pp2", "layer-wise"):
        assert f"wrote t.{name}.json (trace of {name}" in done.stdout
        assert (tmp_path / f"t.{name}.json").is_file()
    refused = _layerwise("simulate", "tiny-cpu", "--analytic", "--trace", "x.json", cwd=tmp_path)
    assert refused.returncode == 2 and "--trace" in refused.stderr


def test_the_papers_figures_only_where_the_paper_made_them(tmp_path: Path) -> None:
    other = _layerwise("simulate", "small-h100x1", cwd=tmp_path)
    assert other.returncode == 0
    assert "12,800" not in other.stdout and "(paper " not in other.stdout
    seed = _layerwise("simulate", "seed-16xh100", "--set", "workload.measured_iters=20", cwd=tmp_path)
    assert "12,800" in seed.stdout and "(paper 160)" in seed.stdout and "(paper 15)" in seed.stdout


def test_a_long_run_says_how_far_it_is() -> None:
    stream = io.StringIO()
    line = ProgressLine("simulate x", 1000, "iterations", quiet_s=0.0, every_s=0.0, stream=stream)
    line.update(250)
    text = stream.getvalue()
    assert text.startswith("[simulate x] 25% (250/1,000 iterations)") and "left (Ctrl-C stops)" in text
    quiet = io.StringIO()
    ProgressLine("x", 10, "iterations", quiet_s=60.0, stream=quiet).update(5)
    assert quiet.getvalue() == ""  # short runs print nothing


@pytest.mark.slow
def test_ctrl_c_ends_a_long_simulation_with_one_line(tmp_path: Path) -> None:
    """A growing context is replayed iteration by iteration: 200,000 of them run for minutes."""
    process = subprocess.Popen([sys.executable, "-m", "layerwise", "simulate", "seed-16xh100", "--plan", "baseline",
                                "--set", "workload.context_growth=grow", "--set", "workload.batch_size=8",
                                "--set", "workload.context_len=1024", "--set", "workload.measured_iters=200000"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    first = process.stderr.readline()  # the first progress line: the simulation is under way
    assert first.startswith("[simulate baseline]"), first
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "layerwise simulate: interrupted by SIGINT"
