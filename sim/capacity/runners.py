"""Where a capacity search's tasks run: this process, local worker processes, or a Ray cluster.

A runner maps a module-level function over tasks and returns the results in the tasks' order, calling
``on_done(index, result)`` as each finishes. Tasks are deterministic values, so which runner ran
them (and in which order they finished) never changes a result.

* :class:`LocalRunner` (``--jobs N``): this process for N = 1, else a pool of N forked processes that
  lives as long as the search (each keeps its iteration pricers warm between waves); workers ignore
  SIGINT and die on SIGTERM, and the parent ends them when it is interrupted.
* :class:`RayRunner` (``--ray auto`` or ``--ray HOST:PORT``): the same tasks as Ray tasks of one CPU
  each. ``auto`` connects to the cluster named by ``RAY_ADDRESS`` or starts a local Ray instance (with
  ``cpus`` CPUs, if given); an address is first checked with a TCP connection and Ray's connection
  wait is bounded, so an address where no cluster answers is one line within seconds. The workers
  import this package: on a remote cluster, install layerwise there.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from sim.capacity.tasks import CapacityContext, install_context, installed
from topology.errors import LayerwiseError

T = TypeVar("T")
R = TypeVar("R")
OnDone = Callable[[int, Any], None]
CONNECT_TIMEOUT_S = 3.0
RAY_GCS_WAIT_S = "3"  # Ray's own wait for the cluster's GCS (RAY_gcs_server_port_wait_time_s)


class Runner(Protocol):
    description: str

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], on_done: OnDone | None = None) -> list[Any]:
        ...

    def close(self) -> None:
        ...


def _worker_init(context: CapacityContext) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    install_context(context)


def _indexed(job: tuple[Callable[[Any], Any], int, Any]) -> tuple[int, Any]:
    fn, index, item = job
    return index, fn(item)


class LocalRunner:
    """``jobs`` local processes (this one when 1), each with the search's context installed."""

    def __init__(self, context: CapacityContext, jobs: int) -> None:
        self.jobs = jobs
        self.description = f"{jobs} local process{'es' if jobs > 1 else ''}"
        self._pool: Any = None
        if jobs == 1:
            install_context(context)
        else:
            method = "spawn" if sys.platform == "darwin" else "fork"
            self._pool = multiprocessing.get_context(method).Pool(jobs, initializer=_worker_init,
                                                                   initargs=(context,))

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], on_done: OnDone | None = None) -> list[Any]:
        results: list[Any] = [None] * len(items)
        if self._pool is None:
            for index, item in enumerate(items):
                results[index] = fn(item)
                if on_done is not None:
                    on_done(index, results[index])
            return results
        for index, result in self._pool.imap_unordered(_indexed, [(fn, i, x) for i, x in enumerate(items)]):
            results[index] = result
            if on_done is not None:
                on_done(index, result)
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


def _ray_call(fn: Callable[[Any], Any], context_ref: list[Any], item: Any) -> Any:
    """On a Ray worker: install the context once (it travels as an object reference), then run."""
    import ray

    ref = context_ref[0]
    key = context_ref[1]
    if not installed(key):
        install_context(ray.get(ref))
    return fn(item)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """One line if nothing accepts a TCP connection at ``HOST:PORT`` within ``timeout_s``."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise LayerwiseError("--ray", f"{address!r} is not HOST:PORT (or auto)")
    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise LayerwiseError("--ray", f"no Ray cluster answers at {address} ({reason})") from None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Ray's C++ core writes connection retries straight to file descriptor 2: hold them back while
    connecting (a failure is reported as one line instead)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class RayRunner:
    """Tasks as Ray tasks (module docstring)."""

    def __init__(self, context: CapacityContext, address: str, cpus: int | None = None) -> None:
        try:
            import ray
        except ModuleNotFoundError:
            raise LayerwiseError("--ray", "needs the ray package: pip install -e '.[ray]'") from None
        import logging

        self._ray = ray
        if address != "auto":
            check_reachable(address)
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", RAY_GCS_WAIT_S)
        local = address == "auto" and not os.environ.get("RAY_ADDRESS")
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "logging_level": logging.ERROR, "configure_logging": True}
        if local and cpus is not None:
            options["num_cpus"] = cpus
        try:
            with _quiet_stderr():
                ray.init(address=None if address == "auto" else address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "auto" if address == "auto" else address
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LayerwiseError("--ray", f"no Ray cluster answers at {where}: {first}") from None
        self._started = True
        resources = ray.cluster_resources()
        self.description = f"Ray at {address} ({int(resources.get('CPU', 0))} CPUs)"
        self._context = [ray.put(context), context.key]
        self._remote = ray.remote(num_cpus=1)(_ray_call)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], on_done: OnDone | None = None) -> list[Any]:
        ray = self._ray
        refs = [self._remote.remote(fn, self._context, item) for item in items]
        index_of = {ref: index for index, ref in enumerate(refs)}
        results: list[Any] = [None] * len(items)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                index = index_of[ref]
                results[index] = ray.get(ref)
                if on_done is not None:
                    on_done(index, results[index])
        return results

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False
