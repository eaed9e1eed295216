"""Launch torchrun for a plan on this host, stream its output, and turn failures into one line.

``launch_plan`` checks the plan first (world size, dimensions: before any process starts),
then runs ``python -m torch.distributed.run --nproc-per-node N -m executor ...`` with
``NCCL_NVLS_ENABLE=0`` and ``TORCH_SYMM_MEM_DISABLE_MULTICAST=1`` unless already set. A
wall-clock backstop (the rank timeout plus a start-up margin) ends a run that hangs anyway.
SIGINT or SIGTERM to the launcher ends torchrun and every worker (each in a session of its
own) and waits until all are gone, then raises :class:`RunInterrupted`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import FrameType, TracebackType

from executor.checks import check_plan_runs
from executor.faults import KILL_EXIT_CODE
from executor.layout import stage_rank_groups
from executor.process_tree import end_process_tree
from topology.errors import LayerwiseError
from topology.plan import Plan

LAUNCH_ENV_DEFAULTS = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "OMP_NUM_THREADS": "1"}
STARTUP_MARGIN_S = 180.0
STOP_GRACE_S = 15.0  # SIGTERM, then this long before SIGKILL (torchrun itself gives workers 30 s)
TAIL_LINES = 200
MAX_ERROR_CHARS = 300
FAILURE_EXIT_CODE = 3  # a worker that reported its failure (executor.worker)
USER_ERROR_EXIT_CODE = 2
_ROOT_RANK = re.compile(r"^\s*rank\s*:\s*(\d+)")
_ROOT_EXIT = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)")


class RunInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM reached the launcher; torchrun and its workers have been ended."""

    def __init__(self, signum: int, processes_ended: int) -> None:
        self.signum = signum
        self.processes_ended = processes_ended
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


class SignalLatch:
    """While entered (in the main thread), SIGINT and SIGTERM are recorded instead of acting."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _record(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.signum is None:
            self.signum = signum

    def __enter__(self) -> SignalLatch:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._record) for s in self.SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


@dataclass(frozen=True)
class LaunchOutcome:
    returncode: int  # 0 on success
    error: str | None  # one line when the run failed
    elapsed_s: float
    tail: tuple[str, ...] = ()  # the last lines of output when the run failed


def launch_env() -> dict[str, str]:
    env = dict(os.environ)
    for key, value in LAUNCH_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    return env


def torchrun_command(nproc_per_node: int, worker_args: list[str], torchrun_args: list[str]) -> list[str]:
    rendezvous = torchrun_args if torchrun_args else ["--standalone"]
    return [sys.executable, "-m", "torch.distributed.run", *rendezvous, "--nproc-per-node", str(nproc_per_node),
            "-m", "executor", *worker_args]


def nproc_for(plan: Plan, nnodes: int) -> int:
    if plan.num_devices % nnodes:
        raise LayerwiseError("--nnodes", f"{nnodes} nodes do not divide the plan's {plan.num_devices} devices")
    return plan.num_devices // nnodes


def check_before_launch(plan: Plan, workload: object, nnodes: int, backend: str, fill: str) -> int:
    """Checks the launcher can make without starting anything; returns processes per node."""
    from topology.workload import Workload

    assert isinstance(workload, Workload)
    check_plan_runs(plan, workload, plan.num_devices, fill)
    nproc = nproc_for(plan, nnodes)
    if backend == "nccl":
        import torch

        available = torch.cuda.device_count()
        if nproc > available:
            raise LayerwiseError("plan.devices", f"plan {plan.describe()} needs {nproc} GPUs on this host, "
                                                 f"it has {available}")
    return nproc


def _torchrun_failures(lines: list[str]) -> list[tuple[int, int | None]]:
    """(rank, exitcode) of every failed process in torchrun's failure summary."""
    failures: list[tuple[int, int | None]] = []
    rank: int | None = None
    for line in lines:
        if (match := _ROOT_RANK.match(line)) is not None:
            rank = int(match.group(1))
        elif rank is not None and (match := _ROOT_EXIT.match(line)) is not None:
            failures.append((rank, int(match.group(1))))
            rank = None
    return failures


def describe_failure(plan: Plan, lines: list[str], returncode: int) -> str:
    """One line: a rank that died (rather than reporting), else the first worker report.

    SIGTERM is what torchrun sends the survivors once one rank failed, so a rank ended by it
    is named only when no rank reported anything.
    """
    groups = stage_rank_groups(plan)

    def died(rank: int, exitcode: int | None) -> str:
        stage = next((i for i, ranks in enumerate(groups) if rank in ranks), None)
        why = ("killed by fault injection" if exitcode == KILL_EXIT_CODE
               else f"killed by signal {-exitcode}" if exitcode is not None and exitcode < 0
               else f"exit code {exitcode}")
        return f"failed: rank {rank} (stage {stage}, {plan.devices[rank]}) died ({why})"

    failures = _torchrun_failures(lines)
    for rank, exitcode in failures:
        if exitcode not in (FAILURE_EXIT_CODE, USER_ERROR_EXIT_CODE, -signal.SIGTERM):
            return died(rank, exitcode)
    for prefix in ("executor: error:", "executor: failed:"):
        for line in lines:
            if line.startswith(prefix):
                text = line[len("executor: "):]
                return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS] + " ..."
    for rank, exitcode in failures:
        return died(rank, exitcode)
    return f"failed: torchrun exited with code {returncode}"


def run_torchrun(plan: Plan, command: list[str], timeout_s: float, quiet: bool = False) -> LaunchOutcome:
    """Run ``command`` in its own process group, echoing its output; end it after ``timeout_s``."""
    started = time.perf_counter()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    first_errors: list[str] = []
    with SignalLatch() as latch:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=launch_env(), start_new_session=True, bufsize=1)
        deadline = started + timeout_s
        timed_out = False
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        while True:
            if latch.signum is not None:  # Ctrl-C or SIGTERM: end every process of the run, then say so
                ended = end_process_tree(process, STOP_GRACE_S)
                process.stdout.close()
                raise RunInterrupted(latch.signum, ended)
            line = process.stdout.readline()
            if line:
                text = line.rstrip("\n")
                tail.append(text)
                if text.startswith(("executor: error:", "executor: failed:")):
                    first_errors.append(text)
                if not quiet:
                    print(text, flush=True)
                continue
            if process.poll() is not None:
                break
            if time.perf_counter() > deadline:
                timed_out = True
                end_process_tree(process, STOP_GRACE_S)
                break
            time.sleep(0.05)
    rest = process.stdout.read() or ""
    for text in rest.splitlines():
        tail.append(text)
        if text.startswith(("executor: error:", "executor: failed:")):
            first_errors.append(text)
        if not quiet:
            print(text, flush=True)
    elapsed_s = time.perf_counter() - started
    if timed_out:
        return LaunchOutcome(124, f"failed: the run did not finish within {timeout_s:.0f} s and was ended",
                             elapsed_s, tuple(tail))
    if process.returncode == 0:
        return LaunchOutcome(0, None, elapsed_s)
    return LaunchOutcome(process.returncode, describe_failure(plan, first_errors + list(tail), process.returncode),
                         elapsed_s, tuple(tail))
