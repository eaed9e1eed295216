"""End a launched process and everything it started, and wait until all of it is gone.

torchrun starts each worker in a session of its own, so signalling torchrun's process group
does not reach the workers; if torchrun dies first they are re-parented and run on. Here the
tree is found from ``/proc`` (each process's parent), every member is sent SIGTERM, and what
is left after a grace period gets SIGKILL. A process is named by its pid *and* its start time,
so a pid reused meanwhile is never signalled. Without ``/proc`` (not Linux) only the launched
process's group is signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
POLL_S = 0.05
KILL_WAIT_S = 5.0  # after SIGKILL: the kernel ends a process at once, unless it is stuck in I/O


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start_ticks: int  # start time in clock ticks since boot (/proc/PID/stat field 22)


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start ticks) of ``pid``, or None when it does not exist."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root_pid: int) -> list[ProcessId]:
    """Every process below ``root_pid`` (children, their children, ...), as of now."""
    if not PROC.is_dir():
        return []
    children: dict[int, list[ProcessId]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append(ProcessId(int(entry.name), stat[2]))
    found: list[ProcessId] = []
    queue = [root_pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child.pid)
    return found


def is_alive(process: ProcessId) -> bool:
    """Running, and the same process (a zombie has ended; it only waits to be reaped)."""
    stat = _stat(process.pid)
    if stat is None:
        return not PROC.is_dir() and _signal_reaches(process.pid)
    return stat[2] == process.start_ticks and stat[1] not in ("Z", "X")


def _signal_reaches(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _send(process: ProcessId, signum: int) -> None:
    if is_alive(process):
        try:
            os.kill(process.pid, signum)
        except ProcessLookupError:
            pass


def _send_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def end_process_tree(root: subprocess.Popen[str], grace_s: float) -> int:
    """SIGTERM ``root`` (a session leader: its whole group) and every descendant; SIGKILL what
    remains after ``grace_s``; return once all are gone, with how many processes there were."""
    tree = {p.pid: p for p in descendants(root.pid)}
    _send_group(root.pid, signal.SIGTERM)
    for process in tree.values():
        _send(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if root.poll() is None:  # workers started after the first look are ended too
            for process in descendants(root.pid):
                if process.pid not in tree:
                    tree[process.pid] = process
                    _send(process, signal.SIGTERM)
        if root.poll() is not None and not any(is_alive(p) for p in tree.values()):
            return 1 + len(tree)
        time.sleep(POLL_S)
    _send_group(root.pid, signal.SIGKILL)
    for process in tree.values():
        _send(process, signal.SIGKILL)
    root.wait()
    deadline = time.monotonic() + KILL_WAIT_S
    while any(is_alive(p) for p in tree.values()) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    return 1 + len(tree)
