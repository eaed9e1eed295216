"""A signal that arrives while ``python -m layerwise`` is still importing its command line (a long moment
on a loaded machine: the fuzz's signals 0.05 s after the start found it) ends in one line and 128 + the
signal, not in a KeyboardInterrupt traceback or a death by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# A finder that sends the signal to its own process when layerwise.cli is imported, then lets the import go on.
SCRIPT = """
import importlib.abc, os, runpy, sys
class Signal(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "layerwise.cli":
            os.kill(os.getpid(), {signum})
        return None
sys.meta_path.insert(0, Signal())
sys.argv = ["layerwise", "plan", "tiny-cpu"]
runpy.run_module("layerwise", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_command_line_is_imported(tmp_path: Path, signum: int) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(signum=int(signum))], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 128 + signum, done.stderr
    assert done.stderr.strip() == f"layerwise: interrupted by {signal.Signals(signum).name}"
    assert not list(tmp_path.iterdir())
