"""Keep only the device-side events (kernels, memcpy, memset) and metadata of a torch.profiler
Chrome trace, so a measured timeline is small enough to commit under results/.

Usage: python benchmarks/device/trim_trace.py TRACE.json [TRACE.json ...]   (rewrites in place, atomically)
"""

from __future__ import annotations

import json
import sys

from topology.atomic_io import write_text_atomic

DEVICE_SIDE = ("kernel", "gpu_memcpy", "gpu_memset")
KEPT_FIELDS = ("name", "cat", "ph", "ts", "dur", "pid", "tid")  # kernel launch arguments dropped


def trim(path: str) -> tuple[int, int]:
    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    events = raw["traceEvents"] if isinstance(raw, dict) else raw
    kept = [
        e if e.get("ph") == "M" else {k: e[k] for k in KEPT_FIELDS if k in e}
        for e in events
        if e.get("ph") == "M" or str(e.get("cat", "")).lower() in DEVICE_SIDE
    ]
    if isinstance(raw, dict):
        raw["traceEvents"] = kept
        raw["trimmed"] = "device-side events only, without their args (benchmarks/device/trim_trace.py)"
    write_text_atomic(path, json.dumps(raw if isinstance(raw, dict) else kept))
    return len(events), len(kept)


if __name__ == "__main__":
    for trace_path in sys.argv[1:]:
        before, after = trim(trace_path)
        print(f"{trace_path}: {before} -> {after} events")
