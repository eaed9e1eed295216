"""SIGINT/SIGTERM to the launcher end torchrun and every worker, and leave no result (issue 13).

The fast tests use a stand-in for torchrun that, like torchrun, starts each worker in a session
of its own, then dies at once on SIGTERM (the case that left workers running); one worker
ignores SIGTERM. The slow test runs the real thing: ``layerwise run`` under torchrun with gloo.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from executor.process_tree import ProcessId, descendants, end_process_tree, is_alive

REPO = Path(__file__).resolve().parents[2]
WORKER = "import signal, sys, time\nif sys.argv[1] == 'stubborn': signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" \
         "time.sleep(120)"


def fake_torchrun(*kinds: str) -> str:
    return textwrap.dedent(f"""
        import subprocess, sys, time
        for kind in {kinds!r}:
            subprocess.Popen([sys.executable, "-c", {WORKER!r}, kind], start_new_session=True)
        time.sleep(120)
    """)


LAUNCHER = textwrap.dedent(f"""
    import sys
    from executor.launch import RunInterrupted, run_torchrun
    from topology.experiment import build_plan, load_experiment
    plan = build_plan(load_experiment("tiny-cpu"), "pp2")
    try:
        run_torchrun(plan, [sys.executable, "-c", {fake_torchrun("plain", "plain")!r}], timeout_s=120)
    except RunInterrupted as stop:
        print(f"stopped: {{stop}}, {{stop.processes_ended}} processes", file=sys.stderr)
        sys.exit(128 + stop.signum)
""")


def wait_for_tree(root_pid: int, size: int, timeout_s: float) -> list[ProcessId]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tree = descendants(root_pid)
        if len(tree) >= size:
            return tree
        time.sleep(0.05)
    raise AssertionError(f"only {len(descendants(root_pid))} of {size} processes started in {timeout_s} s")


def test_end_process_tree_ends_workers_in_their_own_sessions() -> None:
    root = subprocess.Popen([sys.executable, "-c", fake_torchrun("plain", "stubborn")], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        workers = wait_for_tree(root.pid, 2, timeout_s=30)
        assert all(os.getsid(w.pid) == w.pid != root.pid for w in workers)  # as torchrun's workers are
        started = time.monotonic()
        assert end_process_tree(root, grace_s=1.0) == 3
        assert time.monotonic() - started < 1.0 + 5.0  # the stubborn one needed SIGKILL after the grace
        assert root.returncode is not None and not any(is_alive(w) for w in workers)
    finally:
        for process in [*descendants(root.pid), ProcessId(root.pid, 0)]:
            if process.pid != root.pid or root.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
        root.stdout.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_launcher_forwards_a_signal_and_waits(signum: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, start_new_session=True)
    tree = wait_for_tree(launcher.pid, 3, timeout_s=60)  # the stand-in torchrun and its two workers
    os.kill(launcher.pid, signum)
    try:
        _, err = launcher.communicate(timeout=30)
    finally:
        for process in descendants(launcher.pid):
            os.kill(process.pid, signal.SIGKILL)
    assert launcher.returncode == 128 + signum
    assert err.strip().splitlines()[-1] == f"stopped: interrupted by {signal.Signals(signum).name}, 3 processes"
    assert not any(is_alive(p) for p in tree)


@pytest.mark.slow
def test_sigterm_to_layerwise_run_leaves_no_process_and_no_result(tmp_path: Path) -> None:
    result = tmp_path / "out" / "r.json"
    command = [sys.executable, "-m", "layerwise", "run", "tiny-cpu", "--plan", "pp2", "--json", str(result),
               "--set", "workload.measured_iters=100000000"]  # would run for hours
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        tree = wait_for_tree(run.pid, 3, timeout_s=120)  # torchrun and both workers
        assert run.stdout is not None
        lines = iter(run.stdout.readline, "")
        started = next((line for line in lines if line.startswith("executor: warmed up")), "")
        assert started, "the workers never reached their measured run"
        os.kill(run.pid, signal.SIGTERM)
        signalled = time.monotonic()
        _, err = run.communicate(timeout=60)
        gone_after_s = time.monotonic() - signalled
    finally:
        for process in descendants(run.pid):
            os.kill(process.pid, signal.SIGKILL)
        if run.poll() is None:
            run.kill()
    assert run.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines()[-1].startswith(
        "layerwise run: interrupted by SIGTERM: ended torchrun and its workers")
    assert gone_after_s < 20.0  # torchrun stops its workers at once; the bound is the SIGKILL grace
    assert not any(is_alive(p) for p in tree)
    leftovers = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert leftovers == [], leftovers  # no result, no half-written temporary file
