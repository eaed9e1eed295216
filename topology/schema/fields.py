"""The number types of every input kind: a type, a range and finiteness, the unit in the field name.

Strict: a count is an integer (not ``true``, not ``2.5``, not ``"4"``); a measured quantity is a finite
number (an integer is accepted as a number; NaN and infinity are not). The same types check the
command line's numbers (:func:`parse_cli_number`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

MAX_COUNT = 2**53  # a count past this is no count a file or flag means (and floats stop being exact)

Count = Annotated[int, Field(strict=True, ge=1, le=MAX_COUNT)]  # layers, devices, microbatches, iterations
Index = Annotated[int, Field(strict=True, ge=0, le=MAX_COUNT)]  # positions, layer bounds
Bytes = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]  # a size in bytes
PositiveBytes = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)]
Positive = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]  # a rate, a time, a size: > 0
NonNegative = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]  # a time that may be 0
MAX_KERNEL_S = 1.0  # a launch overhead, a kernel's or a message's fixed latency: above a second is no GPU
KernelSeconds = Annotated[float, Field(strict=True, ge=0, le=MAX_KERNEL_S, allow_inf_nan=False)]
MAX_MEASURED_S = 60.0  # one measured kernel call (a GEMM or attention point of the calibration)
MeasuredSeconds = Annotated[float, Field(strict=True, gt=0, le=MAX_MEASURED_S, allow_inf_nan=False)]
Fraction = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]  # a share of a whole
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # any finite number (a timestamp)
Flag = Annotated[bool, Field(strict=True)]
Text = Annotated[str, Field(strict=True, max_length=4096)]
Name = Annotated[str, Field(strict=True, min_length=1, max_length=255)]

_CLI_KINDS: dict[str, tuple[Any, str]] = {
    "count": (Count, "an integer from 1 to 2**53"),
    "index": (Index, "an integer >= 0"),
    "positive": (Positive, "a finite number > 0"),
    "non-negative": (NonNegative, "a finite number >= 0"),
}


def parse_cli_number(text: str, kind: str) -> int | float:
    """A command-line number of ``kind`` (``count``, ``index``, ``positive``, ``non-negative``); raises
    ``ValueError`` with the accepted range for anything else (``0``, ``-1``, ``1e400``, ``nan``, ``abc``)."""
    field_type, wanted = _CLI_KINDS[kind]
    try:
        value: int | float = int(text) if kind in ("count", "index") else float(text)
    except (ValueError, OverflowError):
        raise ValueError(f"must be {wanted}, got {text!r}") from None
    try:
        return TypeAdapter(field_type).validate_python(value)  # type: ignore[no-any-return]
    except ValidationError:
        raise ValueError(f"must be {wanted}, got {text!r}") from None


def cli_number(kind: str) -> Callable[[str], int | float]:
    """An ``argparse`` ``type=`` for a number of ``kind``: a bad value is argparse's one-line usage error
    naming the option and the accepted range."""

    def parse(text: str) -> int | float:
        try:
            return parse_cli_number(text, kind)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = kind.replace("-", "_")
    return parse
