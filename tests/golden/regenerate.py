"""Write the golden snapshots from the code as it is: ``simulated.json`` (the simulator's numbers)
and ``outputs/*.json`` (the pinned commands' JSON outputs); see golden_cases.py."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from golden_cases import cases, command_outputs, numbers, run_command

from topology.atomic_io import write_text_atomic

HERE = Path(__file__).parent

if __name__ == "__main__":
    snapshot = {case.key: numbers(case) for case in cases()}
    write_text_atomic(HERE / "simulated.json", json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    print(f"wrote {HERE / 'simulated.json'} ({len(snapshot)} cases)")
    with tempfile.TemporaryDirectory() as folder:
        for name, argv in command_outputs().items():
            output = run_command(argv, str(Path(folder) / f"{name}.json"))
            write_text_atomic(HERE / "outputs" / f"{name}.json", json.dumps(output, indent=1, sort_keys=True) + "\n")
            print(f"wrote outputs/{name}.json")
