"""Run independent simulations over local cores, reporting each one as it finishes."""

from __future__ import annotations

import multiprocessing
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _indexed(job: tuple[Callable[[T], R], int, T]) -> tuple[int, R]:
    fn, index, item = job
    return index, fn(item)


def _ignore_interrupts() -> None:
    """Workers leave Ctrl-C to the parent, which ends them (one line, no traceback per worker), and
    die at once on SIGTERM (a forked worker would otherwise inherit the parent's handler)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def map_parallel(fn: Callable[[T], R], items: Sequence[T], jobs: int,
                 on_done: Callable[[int, int, R], None] | None = None, chunksize: int = 1) -> list[R]:
    """``[fn(item) for item in items]`` over ``jobs`` processes (in input order); ``on_done(done, total,
    result)`` after each item, in completion order. ``fn`` must be a module-level function.
    ``chunksize`` neighbouring items go to one worker together (items that share a worker's memos).
    The workers ignore SIGINT and die on SIGTERM; an exception in the parent (an interrupt) ends them."""
    total = len(items)
    results: list[R | None] = [None] * total
    workers = max(1, min(jobs, total))
    if workers == 1:
        for index, item in enumerate(items):
            results[index] = result = fn(item)
            if on_done is not None:
                on_done(index + 1, total, result)
        return results  # type: ignore[return-value]
    context = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    with context.Pool(workers, initializer=_ignore_interrupts) as pool:
        for done, (index, result) in enumerate(pool.imap_unordered(_indexed, [(fn, i, x) for i, x in enumerate(items)],
                                                                   chunksize),
                                               start=1):
            results[index] = result
            if on_done is not None:
                on_done(done, total, result)
    return results  # type: ignore[return-value]
