"""Request traces: arrival times and token counts read from a CSV or JSONL file (``.jsonl`` is JSON
lines, one object a row; anything else is read as CSV with a header row).

Formats (``format: auto`` picks the one whose columns the header has; extra columns are ignored):

* ``simple``: ``arrival_s,prompt_tokens,output_tokens``: seconds as given (>= 0);
* ``azure``: the Azure LLM inference traces (2023 Splitwise, 2024 DynamoLLM),
  ``TIMESTAMP,ContextTokens,GeneratedTokens``; ``TIMESTAMP`` is a date and time such as
  ``2023-11-16 18:17:03.9799600`` (any number of fractional digits, or none; 2024 files carry
  ``+00:00``; a time without an offset is read as UTC) and becomes seconds from the first row;
* ``burstgpt``: BurstGPT's ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``
  (release 3 adds ``Session ID`` and ``Elapsed time``); ``Timestamp`` is in seconds, kept as given.
  Only ``Timestamp``, ``Request tokens`` and ``Response tokens`` are read. Failed requests carry
  ``Response tokens`` 0 and are refused like any non-positive count: use the ``_without_fails`` files.

Rows must be in arrival order (equal times allowed); token counts are integers >= 1.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from serving.fields import one_of
from topology.datafile import read_text_file
from topology.errors import LayerwiseError

TRACE_FORMATS = ("auto", "simple", "azure", "burstgpt")
COLUMNS = {  # format -> (time, prompt, output) column names
    "simple": ("arrival_s", "prompt_tokens", "output_tokens"),
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
    "burstgpt": ("Timestamp", "Request tokens", "Response tokens"),
}
_STAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_DIGITS = re.compile(r"^\s*\d+\s*$")
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Trace:
    """A trace's rows as three read-only columns (one entry a request, in arrival order)."""

    source: str
    format: str
    arrival_s: np.ndarray  # (rows,) float64, seconds, non-decreasing, >= 0
    prompt_tokens: np.ndarray  # (rows,) int64, >= 1
    output_tokens: np.ndarray  # (rows,) int64, >= 1

    def __len__(self) -> int:
        return len(self.arrival_s)


def read_trace(path: str | Path, trace_format: str = "auto", field: str = "trace") -> Trace:
    """The trace in ``path`` (see the module docstring); ``field`` prefixes the errors
    (``workload.trace.ContextTokens: row 7 of conv.csv: ...``)."""
    one_of(f"{field}.format", trace_format, TRACE_FORMATS)
    file = Path(path)
    header, rows = _read_rows(file, field)
    chosen = _detect(header, file, field) if trace_format == "auto" else trace_format
    time_column, prompt_column, output_column = COLUMNS[chosen]
    for column in COLUMNS[chosen]:
        if column not in header:
            raise LayerwiseError(f"{field}.{column}", f"missing column in {file.name} ({chosen} traces need "
                                 f"{', '.join(COLUMNS[chosen])}; found {', '.join(header) or 'none'})")
    if not rows:
        raise LayerwiseError(f"{field}.path", f"{file.name} has no rows")
    where = [f"row {number} of {file.name}" for number, _ in rows]
    cells = {column: [row.get(column) for _, row in rows] for column in COLUMNS[chosen]}
    if chosen == "azure":
        times = _stamps_s(cells[time_column], where, f"{field}.{time_column}")
    else:
        times = _each(_seconds, cells[time_column], where, f"{field}.{time_column}")
    _check_order(times, where, f"{field}.{time_column}")
    prompts = _each(_tokens, cells[prompt_column], where, f"{field}.{prompt_column}")
    outputs = _each(_tokens, cells[output_column], where, f"{field}.{output_column}")
    return Trace(source=str(path), format=chosen, arrival_s=_frozen(np.asarray(times, dtype=np.float64)),
                 prompt_tokens=_frozen(np.asarray(prompts, dtype=np.int64)),
                 output_tokens=_frozen(np.asarray(outputs, dtype=np.int64)))


def _each(parse: Callable[[Any, str, str], T], cells: list[Any], where: list[str], field: str) -> list[T]:
    return [parse(cell, at, field) for cell, at in zip(cells, where, strict=True)]


def _frozen(values: np.ndarray) -> np.ndarray:
    values.setflags(write=False)
    return values


def _read_rows(file: Path, field: str) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """The header and the (1-based data row number, row) pairs of a CSV or JSONL file."""
    text = read_text_file(file, f"{field}.path").removeprefix("\ufeff")  # a regular file of bounded size
    if file.suffix.lower() == ".jsonl":
        rows: list[tuple[int, dict[str, Any]]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LayerwiseError(f"{field}.path", f"line {number} of {file.name} is not JSON ({exc.msg})") from None
            except (ValueError, RecursionError):  # an integer of too many digits, or nesting too deep
                raise LayerwiseError(f"{field}.path", f"line {number} of {file.name} is not JSON a trace row "
                                                      "can hold (too many digits or nested too deeply)") from None
            if not isinstance(row, dict):
                raise LayerwiseError(f"{field}.path", f"line {number} of {file.name} is not a JSON object")
            rows.append((number, row))
        header = list(rows[0][1]) if rows else []
        return header, rows
    reader = csv.DictReader(text.splitlines())
    try:
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        return header, [(number, row) for number, row in enumerate(reader, start=1)]
    except csv.Error as exc:  # a field past the csv module's limit, a NUL byte...
        raise LayerwiseError(f"{field}.path", f"{file.name} is not a CSV trace ({exc})") from None


def _detect(header: list[str], file: Path, field: str) -> str:
    """The format whose columns the header has most of (a partial match is reported as its
    missing column by the caller); none at all is an error."""
    matches = {name: sum(column in header for column in columns) for name, columns in COLUMNS.items()}
    best = max(matches, key=lambda name: matches[name])
    if matches[best] == 0:
        wanted = "; ".join(f"{name}: {', '.join(columns)}" for name, columns in COLUMNS.items())
        raise LayerwiseError(f"{field}.format", f"{file.name} has columns {', '.join(header) or 'none'}, "
                             f"which match no trace format ({wanted})")
    return best


def _seconds(value: Any, where: str, field: str) -> float:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise LayerwiseError(field, f"{where}: {value!r} is not a number of seconds") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        raise LayerwiseError(field, f"{where}: {value!r} is not a number of seconds")
    if not math.isfinite(number) or number < 0.0:
        raise LayerwiseError(field, f"{where}: {value!r} must be a finite time >= 0 s")
    return number


def _stamps_s(values: list[Any], where: list[str], field: str) -> list[float]:
    """Azure timestamps as seconds from the first row: whole seconds as integers and the fraction
    apart, so seven fractional digits a week apart keep their precision."""
    whole: list[int] = []
    fraction: list[float] = []
    for value, at in zip(values, where, strict=True):
        match = _STAMP.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise LayerwiseError(field, f"{at}: {value!r} is not a timestamp like '2023-11-16 18:17:03.9799600'")
        year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
        try:
            days = dt.date(year, month, day).toordinal()
        except ValueError:
            raise LayerwiseError(field, f"{at}: {value!r} is not a date") from None
        digits, offset = match.group(7) or "", match.group(8)
        whole.append(days * 86400 + hour * 3600 + minute * 60 + second - _offset_s(offset))
        fraction.append(int(digits) / 10 ** len(digits) if digits else 0.0)
    return [(w - whole[0]) + (f - fraction[0]) for w, f in zip(whole, fraction, strict=True)]


def _offset_s(offset: str | None) -> int:
    if offset is None or offset == "Z":
        return 0
    sign = -1 if offset[0] == "-" else 1
    hours, minutes = int(offset[1:3]), int(offset[-2:])
    return sign * (hours * 3600 + minutes * 60)


def _check_order(times: list[float], where: list[str], field: str) -> None:
    for index in range(1, len(times)):
        if times[index] < times[index - 1]:
            raise LayerwiseError(field, f"{where[index]}: {times[index]!r} s is before the previous row's "
                                 f"{times[index - 1]!r} s (rows must be in arrival order)")
    if times[0] < 0.0:
        raise LayerwiseError(field, f"{where[0]}: {times[0]!r} s is negative")


def _tokens(value: Any, where: str, field: str) -> int:
    if isinstance(value, str) and _DIGITS.match(value):
        count = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        count = value
    else:
        raise LayerwiseError(field, f"{where}: {value!r} is not a whole number of tokens")
    if count < 1:
        raise LayerwiseError(field, f"{where}: {value!r} must be >= 1 token")
    return count
