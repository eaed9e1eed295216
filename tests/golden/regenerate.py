"""Write tests/golden/simulated.json from the simulator as it is (see golden_cases.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from golden_cases import cases, numbers

from topology.atomic_io import write_text_atomic

if __name__ == "__main__":
    snapshot = {case.key: numbers(case) for case in cases()}
    path = Path(__file__).with_name("simulated.json")
    write_text_atomic(path, json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path} ({len(snapshot)} cases)")
