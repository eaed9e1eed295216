"""The executor runs on GPU machines that have no simpy: it must import without it (and without sim/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_executor_imports_without_simpy_or_sim() -> None:
    code = (
        "import sys; sys.modules['simpy'] = None; sys.modules['sim'] = None\n"
        "import executor.worker, executor.suite, executor.launch, executor.pipeline\n"
        "import layerwise.commands.run, layerwise.commands.calibrate, executor.calibrate.run\n"
        f"sys.path.insert(0, {str(BENCHMARKS)!r}); import bench_executor\n"  # the GPU benchmark too
    )
    done = subprocess.run([sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
