"""SIGINT and SIGTERM for every command: one line, exit 128 + the signal, nothing left running.

:func:`install` (the first thing :func:`layerwise.cli.main` does) replaces Python's SIGINT
handler and SIGTERM's default with one that records the signal and raises :class:`Interrupted`
in the main thread. CPython runs a signal handler between two bytecodes of the main thread,
which may be inside a finalizer (``__del__``, a weakref callback, a generator being closed by
the garbage collector); an exception raised there is printed as "Exception ignored" and lost,
and the command would run on. So the signal is also *latched*: every long loop reports its
progress through a callback, and the commands' progress callbacks call :func:`check`, which
raises again while a signal is pending. An interrupt is therefore acted on at the latest at the
next progress report, however the first raise fared.

Worker processes of a pool must not run this handler: the pool's owner
(:func:`sim.parallel.map_parallel`) gives them SIGINT ignored and SIGTERM's default, and the
parent ends them when :class:`Interrupted` leaves the pool's ``with`` block.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A signal asked the command to stop (a BaseException: no ``except Exception`` swallows it)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signum)  # args == (signum,): SimPy re-raises a process's failure as type(e)(*e.args)

    def __str__(self) -> str:
        return f"interrupted by {signal.Signals(self.signum).name}"

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_pending: list[int] = []  # the first signal received, until the process ends


def _handler(signum: int, frame: FrameType | None) -> None:
    del frame
    if not _pending:
        _pending.append(signum)
    raise Interrupted(_pending[0])


def _quiet_when_interrupted(unraisable: Any) -> None:
    """``sys.unraisablehook``: an :class:`Interrupted` raised inside a finalizer is latched and raised again
    (:func:`check`), so CPython's "Exception ignored in ..." traceback for it is not printed; anything else
    is reported as before."""
    if isinstance(unraisable.exc_value, Interrupted):
        return
    _default_unraisablehook(unraisable)


_default_unraisablehook = sys.unraisablehook


def install() -> None:
    """Handle SIGINT and SIGTERM in this (main-thread) process; see the module docstring."""
    if threading.current_thread() is threading.main_thread():
        for signum in HANDLED:
            signal.signal(signum, _handler)
        sys.unraisablehook = _quiet_when_interrupted


def block() -> None:
    """The command is done (outputs whole, workers ended): hold SIGINT and SIGTERM until the process exits,
    so a late signal cannot kill it inside the interpreter's shutdown, where no handler runs any more."""
    if threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, set(HANDLED))


def check() -> None:
    """Raise :class:`Interrupted` again if a signal arrived (it may have been lost in a finalizer)."""
    if _pending:
        raise Interrupted(_pending[0])


def pending() -> int | None:
    return _pending[0] if _pending else None

