"""Value types for command-line options that every command shares (``argparse`` ``type=``).

A bad value becomes argparse's usage error: one line naming the option, exit 2.
"""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer >= 1 (``--jobs``): ``0``, ``-3`` and ``abc`` are refused."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value
