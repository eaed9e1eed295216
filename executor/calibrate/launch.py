"""Kernel launch overhead: bursts of tiny adds, eager (host wall time) and CUDA-graph replay.

The per-kernel cost is the slope of burst time against burst length, so the fixed cost of a
synchronisation or a graph launch drops out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from executor.calibrate.grids import CalibrationGrid
from executor.calibrate.timing import Device, median_s

Progress = Callable[[str], None]


def _eager_burst_s(x: torch.Tensor, count: int, device: Device) -> float:
    device.synchronize()
    begin_s = time.perf_counter()
    for _ in range(count):
        x.add_(1.0)
    device.synchronize()
    return time.perf_counter() - begin_s


def _graph_burst_s(x: torch.Tensor, count: int, device: Device, repeats: int) -> float:
    side = torch.cuda.Stream(device.torch_device)
    side.wait_stream(torch.cuda.current_stream(device.torch_device))
    with torch.cuda.stream(side):
        x.add_(1.0)
    torch.cuda.current_stream(device.torch_device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(count):
            x.add_(1.0)
    graph.replay()
    torch.cuda.synchronize(device.torch_device)
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    totals_s = []
    for _ in range(repeats):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        totals_s.append(start.elapsed_time(end) * 1e-3)
    del graph
    return median_s(totals_s)


def measure_launch(device: Device, grid: CalibrationGrid, progress: Progress) -> dict[str, Any]:
    x = torch.zeros(16, device=device.torch_device, dtype=torch.float32)  # tiny: launch-bound
    _eager_burst_s(x, grid.launch_counts[0], device)  # warm-up
    eager = [{"kernels": n, "time_s": median_s([_eager_burst_s(x, n, device) for _ in range(grid.repeats)])}
             for n in grid.launch_counts]
    progress(f"launch eager: {eager[-1]['time_s'] / eager[-1]['kernels'] * 1e6:.2f} us/kernel at "
             f"{eager[-1]['kernels']} kernels")
    result: dict[str, Any] = {"eager": eager}
    if device.is_cuda:
        graph = [{"kernels": n, "time_s": _graph_burst_s(x, n, device, grid.repeats)} for n in grid.launch_counts]
        progress(f"launch graph: {graph[-1]['time_s'] / graph[-1]['kernels'] * 1e6:.2f} us/kernel")
        result["graph"] = graph
    else:
        result["graph"] = "not measured: no CUDA graphs on cpu"
    return result
