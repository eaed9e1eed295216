"""Where a measured run's profiled timeline lives, if the executor committed one.

Looked for, in order: ``metrics.hardware.trace_path`` (relative to the result file), then
``<result stem>.trace.json`` or ``<result stem>.pt.trace.json`` beside the result.
"""

from __future__ import annotations

from pathlib import Path

from validate.measured import Measurement

TRACE_SUFFIXES = (".trace.json", ".pt.trace.json")


def find_profiled_trace(measurement: Measurement) -> Path | None:
    result_path = Path(measurement.path)
    hardware = measurement.result.metrics.hardware
    recorded = hardware.trace_path if hardware is not None else None
    candidates = []
    if isinstance(recorded, str) and recorded:
        path = Path(recorded)
        candidates.append(path if path.is_absolute() else result_path.parent / path)
    candidates += [result_path.with_name(result_path.stem + suffix) for suffix in TRACE_SUFFIXES]
    return next((c for c in candidates if c.is_file()), None)
