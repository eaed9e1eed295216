"""A signal that lands in a finalizer is not lost: the next progress report raises it again."""

from __future__ import annotations

import gc
import io
import os
import signal
from collections.abc import Iterator

import pytest

from layerwise.terminal import interrupts
from layerwise.terminal.progress import ProgressLine


@pytest.fixture
def handled() -> Iterator[None]:
    previous = {s: signal.getsignal(s) for s in interrupts.HANDLED}
    interrupts.install()
    try:
        yield
    finally:
        interrupts._pending.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _SignalsWhenCollected:
    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside a finalizer
        sum(range(1000))  # bytecodes for the handler to run on


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed raise, as expected
def test_a_signal_swallowed_by_a_finalizer_is_raised_at_the_next_check(handled: None) -> None:
    item = _SignalsWhenCollected()
    del item  # CPython prints "Exception ignored in ... __del__" and carries on
    gc.collect()
    assert interrupts.pending() == signal.SIGTERM
    with pytest.raises(interrupts.Interrupted) as stop:
        ProgressLine("x", 10, "units", quiet_s=0.0, stream=io.StringIO()).update(1)
    assert stop.value.exit_code == 143 and str(stop.value) == "interrupted by SIGTERM"


def test_the_exception_survives_simpy_copying_it(handled: None) -> None:
    copy = type(interrupts.Interrupted(signal.SIGINT))(*interrupts.Interrupted(signal.SIGINT).args)
    assert copy.signum == signal.SIGINT and str(copy) == "interrupted by SIGINT" and copy.exit_code == 130


def test_no_signal_no_raise(handled: None) -> None:
    interrupts.check()
    assert interrupts.pending() is None


def test_a_library_error_after_a_signal_ends_as_the_interrupt(handled: None, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """SimPy, unwinding the signal's exception, can raise its own error (an event triggered twice): the
    command still ends as interrupted, one line and 128 + the signal; without a signal the error escapes."""
    from layerwise import cli

    def broken(command: str, args: list[str]) -> int:
        interrupts._pending.append(signal.SIGINT)
        raise RuntimeError("<StorePut() object> has already been triggered")

    monkeypatch.setattr(cli, "_run", broken)
    assert cli.main(["simulate", "x.yaml"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["layerwise simulate: interrupted by SIGINT"]
    interrupts._pending.clear()

    def plain(command: str, args: list[str]) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "_run", plain)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["simulate", "x.yaml"])


def test_a_finished_command_holds_late_signals_until_it_exits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After the command's work (outputs written), SIGINT and SIGTERM are blocked: a signal sent then cannot
    kill the interpreter's shutdown (the fuzz saw exit -2 after a finished main job); the process exits 0."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os, signal, sys
        from layerwise import cli
        import atexit
        cli._run = lambda command, args: 0
        sys.argv = ["layerwise", "simulate"]
        def late():  # the interpreter's shutdown: no handler runs any more
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            print("still here", flush=True)
        atexit.register(late)
        cli.entry()
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "still here", (done.returncode, done.stderr)
