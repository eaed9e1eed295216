"""SIGINT and SIGTERM to the main job, a search and a sweep (issue 25: ignored for 30 s, or workers left
running): each ends within 2 s of the signal with one line and 128 + the signal, no process of its group
left and no output file. The signal is sent once the command has started work (its first progress line)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMANDS = {
    "main-job": ("--jobs", "2"),
    "search": ("search", "llama3-70b-64xh100", "--no-plot"),
    "sweep": ("sweep", "seed-16xh100", "--grid", "workload.batch_size=8,16,32,64,128,256", "--jobs", "2"),
}
OUTPUT_FLAG = {"main-job": "--json", "search": "--json", "sweep": "--out"}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_signal_stops_the_command_and_its_workers(name: str, signum: int, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, "-m", "layerwise", *COMMANDS[name], OUTPUT_FLAG[name], str(tmp_path / "o.json")]
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    assert process.stderr is not None
    first = process.stderr.readline()  # the first progress line: the work has begun
    assert first, "the command ended before it reported progress"
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        rest = process.communicate(timeout=30)[1]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    took_s = time.monotonic() - sent
    time.sleep(0.3)
    left = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert not left, f"processes {left} left running"
    if process.returncode == 0:
        return  # it finished before the signal arrived: nothing to stop
    assert process.returncode == 128 + signum, rest
    assert "Traceback" not in rest and f"interrupted by {signal.Signals(signum).name}" in rest.strip().splitlines()[-1]
    assert took_s <= 2.0, f"took {took_s:.2f} s"
    assert not list(tmp_path.iterdir())
