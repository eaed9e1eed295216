"""Read a Chrome trace (the simulator's ``trace_path`` output, or a torch.profiler export)
into Gantt bars: one row per (process, thread), complete events (``"ph": "X"``) only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topology.datafile import load_json_file
from topology.errors import LayerwiseError
from topology.schema.check import validated
from topology.schema.trace import TraceFile

MAX_BARS = 4000  # a window of a long trace is drawn, not the whole run
US_PER_S = 1e6  # Chrome trace timestamps and durations are microseconds


@dataclass(frozen=True)
class Bar:
    row: str
    name: str
    category: str
    start_s: float
    duration_s: float

    @property
    def operator(self) -> str:
        """The name without a layer prefix (``L3.attn_norm`` -> ``attn_norm``)."""
        return re.sub(r"^L\d+\.", "", self.name)


def _events(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, list):
        return [e for e in raw if isinstance(e, dict)]
    if isinstance(raw, dict) and isinstance(raw.get("traceEvents"), list):
        return [e for e in raw["traceEvents"] if isinstance(e, dict)]
    raise LayerwiseError("trace", "not a Chrome trace (expected a list or a traceEvents list)")


def _row_names(events: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Names given by metadata events (``process_name`` / ``thread_name``), else pid/tid."""
    process: dict[str, str] = {}
    thread: dict[tuple[str, str], str] = {}
    for e in events:
        if e.get("ph") != "M":
            continue
        name = str((e.get("args") or {}).get("name", ""))
        if e.get("name") == "process_name":
            process[str(e.get("pid"))] = name
        elif e.get("name") == "thread_name":
            thread[(str(e.get("pid")), str(e.get("tid")))] = name
    rows: dict[tuple[str, str], str] = {}
    for e in events:
        key = (str(e.get("pid")), str(e.get("tid")))
        if key not in rows:
            p = process.get(key[0], f"pid {key[0]}")
            rows[key] = thread.get(key, f"{p} / tid {key[1]}")
    return rows


def load_trace_bars(path: str | Path, gpu_only: bool = False) -> list[Bar]:
    """Complete events of a trace as bars, time from the first event; ``gpu_only`` keeps
    torch.profiler's device-side categories (kernels, memcpy, memset) only."""
    raw = load_json_file(path, "trace")
    events = _events(raw)  # "not a Chrome trace" first, then each event's fields
    validated(TraceFile, raw, str(path), "trace")
    rows = _row_names(events)
    complete = [e for e in events if e.get("ph") == "X" and e.get("ts") is not None and e.get("dur") is not None]
    if gpu_only:
        device_side = ("kernel", "gpu_memcpy", "gpu_memset")
        complete = [e for e in complete if str(e.get("cat", "")).lower() in device_side] or complete
    if not complete:
        raise LayerwiseError("trace", f"{str(path)!r} holds no complete ('X') events")
    t0 = min(float(e["ts"]) for e in complete)
    bars = [
        Bar(
            row=rows[(str(e.get("pid")), str(e.get("tid")))],
            name=str(e.get("name", "")),
            category=str(e.get("cat", "")),
            start_s=(float(e["ts"]) - t0) / US_PER_S,
            duration_s=float(e["dur"]) / US_PER_S,
        )
        for e in complete
    ]
    return sorted(bars, key=lambda b: (b.start_s, b.row))


def steady_window(bars: list[Bar], window_s: float) -> list[Bar]:
    """The bars of a ``window_s``-long window ending at the trace's last event (steady state,
    past the warmup), at most :data:`MAX_BARS` of them."""
    if not bars:
        return []
    end_s = max(b.start_s + b.duration_s for b in bars)
    start_s = max(0.0, end_s - window_s)
    window = [b for b in bars if b.start_s + b.duration_s > start_s]
    return window[-MAX_BARS:]
