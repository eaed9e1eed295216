"""Checked values from a mapping (an experiment file's ``workload`` section, a scheduler section):
the one place the serving layer turns loose input into typed values, each bad value raised as one
``LayerwiseError`` naming its field (``workload.arrivals.rate_per_s``) and what it got."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from topology.errors import LayerwiseError


def check_known_keys(field: str, raw: Mapping[str, Any], known: Iterable[str]) -> None:
    """A mapping with a key it does not know is refused (a typo must not silently mean a default)."""
    if not isinstance(raw, Mapping):
        raise LayerwiseError(field, f"must be a mapping, got {raw!r}")
    allowed = set(known)
    unknown = sorted(str(key) for key in set(raw) - allowed)
    if unknown:
        raise LayerwiseError(field, f"unknown field {unknown[0]!r} (known: {', '.join(sorted(allowed))})")


def required(field: str, raw: Mapping[str, Any], key: str) -> Any:
    """``raw[key]``, or one error naming ``field.key`` as missing."""
    if key not in raw:
        raise LayerwiseError(f"{field}.{key}", "missing")
    return raw[key]


def positive_int(field: str, value: Any) -> int:
    """An integer >= 1 (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LayerwiseError(field, f"must be a positive integer, got {value!r}")
    return value


def non_negative_int(field: str, value: Any) -> int:
    """An integer >= 0 (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LayerwiseError(field, f"must be an integer >= 0, got {value!r}")
    return value


def finite_float(field: str, value: Any) -> float:
    """A finite real number (an int is taken; a bool, a string, NaN or an infinity is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LayerwiseError(field, f"must be a finite number, got {value!r}")
    return float(value)


def positive_float(field: str, value: Any) -> float:
    """A finite number > 0."""
    number = finite_float(field, value)
    if number <= 0.0:
        raise LayerwiseError(field, f"must be > 0, got {value!r}")
    return number


def non_negative_float(field: str, value: Any) -> float:
    """A finite number >= 0."""
    number = finite_float(field, value)
    if number < 0.0:
        raise LayerwiseError(field, f"must be >= 0, got {value!r}")
    return number


def one_of(field: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of the named choices (a closed vocabulary: policies, distribution kinds, formats)."""
    if value not in choices:
        raise LayerwiseError(field, f"must be one of {', '.join(choices)}; got {value!r}")
    return str(value)
