"""Chrome trace / Perfetto JSON: one track per device (compute by operator, communication, idle).

Times in the file are microseconds (the format's unit). Open in https://ui.perfetto.dev or
chrome://tracing. Only the first ``trace_iterations`` measured iterations are recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.recorder import TraceSlice
from topology.atomic_io import json_text, write_text_atomic

US_PER_S = 1e6


def trace_events(slices: list[TraceSlice], devices: tuple[str, ...], label: str) -> list[dict[str, Any]]:
    tid = {device: index for index, device in enumerate(devices)}
    events: list[dict[str, Any]] = [{"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": label}}]
    for device, index in tid.items():
        events.append({"ph": "M", "name": "thread_name", "pid": 0, "tid": index, "args": {"name": device}})
        events.append({"ph": "M", "name": "thread_sort_index", "pid": 0, "tid": index, "args": {"sort_index": index}})
    ordered = sorted(slices, key=lambda s: (tid[s[0]], s[3], s[1]))
    if not ordered:
        return events
    window_start = min(s[3] for s in ordered)
    window_end = max(s[3] + s[4] for s in ordered)
    busy_until = {device: window_start for device in devices}
    for device, name, category, start_s, duration_s in ordered:
        if start_s > busy_until[device]:
            events.append(_slice(tid[device], "idle", "idle", busy_until[device], start_s - busy_until[device]))
        events.append(_slice(tid[device], name, category, start_s, duration_s))
        busy_until[device] = max(busy_until[device], start_s + duration_s)
    for device in devices:
        if window_end > busy_until[device]:
            events.append(_slice(tid[device], "idle", "idle", busy_until[device], window_end - busy_until[device]))
    return events


def _slice(tid: int, name: str, category: str, start_s: float, duration_s: float) -> dict[str, Any]:
    return {"ph": "X", "pid": 0, "tid": tid, "name": name, "cat": category,
            "ts": round(start_s * US_PER_S, 4), "dur": round(duration_s * US_PER_S, 4)}


def write_trace(path: str | Path, slices: list[TraceSlice], devices: tuple[str, ...], label: str) -> Path:
    doc = {"traceEvents": trace_events(slices, devices, label), "displayTimeUnit": "ms"}
    return write_text_atomic(path, json_text(doc, indent=None))
