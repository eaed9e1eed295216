"""How to time a burst of calls: CUDA graphs (or events) on a GPU, the wall clock on a CPU.

A burst runs ``calls`` back to back; the time per call is the burst's time divided by their
number, one value per repeat. On a GPU the burst is captured in one CUDA graph so launch gaps
do not hide short kernels (decode GEMMs last microseconds, an eager launch costs about as much).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Device:
    """Where measurements run: ``torch_device`` plus the data type of GEMMs and attention."""

    torch_device: torch.device
    dtype: torch.dtype
    l2_bytes: int  # the device's nominal L2 (0 on a CPU): sizes rotation buffers past it

    @property
    def is_cuda(self) -> bool:
        return self.torch_device.type == "cuda"

    def synchronize(self) -> None:
        if self.is_cuda:
            torch.cuda.synchronize(self.torch_device)


def time_burst_s(calls: Sequence[Callable[[], object]], device: Device, repeats: int,
                 use_graph: bool = True, warmup: int = 2) -> list[float]:
    """Seconds per call, one value per repeat, for ``calls`` run in order as one burst."""
    if not calls:
        raise ValueError("time_burst_s needs at least one call")
    if device.is_cuda and use_graph:
        try:
            return _time_graph_s(calls, device, repeats, warmup)
        except RuntimeError:
            torch.cuda.synchronize(device.torch_device)  # capture failed: fall back to events
    for _ in range(warmup):
        for call in calls:
            call()
    device.synchronize()
    return [_time_eager_once_s(calls, device) / len(calls) for _ in range(repeats)]


def _time_eager_once_s(calls: Sequence[Callable[[], object]], device: Device) -> float:
    return burst_time_s(calls, device.torch_device)


def burst_time_s(calls: Sequence[Callable[[], object]], device: torch.device) -> float:
    """Seconds to run ``calls`` back to back once (CUDA events on a GPU, the wall clock on a CPU);
    the caller warms up. ``burst_time_s([op] * n, device) / n`` is the time per ``op``."""
    if device.type == "cuda":
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for call in calls:
            call()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e-3  # elapsed_time is in milliseconds
    begin_s = time.perf_counter()
    for call in calls:
        call()
    return time.perf_counter() - begin_s


def _time_graph_s(calls: Sequence[Callable[[], object]], device: Device, repeats: int,
                  warmup: int) -> list[float]:
    side = torch.cuda.Stream(device.torch_device)
    side.wait_stream(torch.cuda.current_stream(device.torch_device))
    with torch.cuda.stream(side):  # warm up (cuBLAS workspaces, autotuning) off the capture
        for _ in range(warmup):
            for call in calls:
                call()
    torch.cuda.current_stream(device.torch_device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # thread_local: an executor run times its attention paths with NCCL's watchdog thread alive.
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        for call in calls:
            call()
    graph.replay()
    torch.cuda.synchronize(device.torch_device)
    per_call_s = []
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    for _ in range(repeats):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        per_call_s.append(start.elapsed_time(end) * 1e-3 / len(calls))
    del graph
    return per_call_s


def median_s(values_s: Sequence[float]) -> float:
    return float(statistics.median(values_s))


def rotation_copies(bytes_per_copy: int, device: Device, budget_bytes: int, l2_multiple: int = 4,
                    max_copies: int = 64) -> int:
    """How many buffers to rotate among so each call reads data that is not in L2.

    Enough copies to span ``l2_multiple`` times the L2 (at least two), within ``budget_bytes``;
    a single copy when even two do not fit (such a buffer is far larger than any L2 anyway).
    """
    wanted = max(2, -(-l2_multiple * device.l2_bytes // max(bytes_per_copy, 1)))
    affordable = max(1, budget_bytes // max(bytes_per_copy, 1))
    return int(min(wanted, affordable, max_copies))


def bursts(count: int, rotation: int) -> int:
    """Calls per burst: at least ``count``, a whole number of rotations."""
    return rotation * max(1, -(-count // rotation))
