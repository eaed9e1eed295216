"""The base install (no matplotlib, no torch) runs the commands the README says it runs: the main job
(`layerwise`, which is `simulate`), `search`, `sweep`, `plan` and `capacity` import without either."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BLOCK = ("import sys\n"
         "for name in ('matplotlib', 'torch'):\n"
         "    sys.modules[name] = None  # an import of either now fails\n")


def test_the_base_commands_import_without_matplotlib_or_torch() -> None:
    code = BLOCK + ("import importlib\n"
                    "for name in ('simulate', 'search', 'sweep', 'plan', 'capacity'):\n"
                    "    importlib.import_module('layerwise.commands.' + name)\n"
                    "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_simulation_runs_without_matplotlib(tmp_path: Path) -> None:
    code = BLOCK + ("from layerwise.cli import main\n"
                    f"raise SystemExit(main(['simulate', 'tiny-cpu', '--json', {str(tmp_path / 'o.json')!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
