"""Usable L2: one skinny GEMM on a hot weight versus weights rotated so they miss the L2.

For each weight size, ``x @ W.T`` with x of ``l2_rows`` rows runs back to back inside one CUDA
graph, once on the same W every call (hot: W stays in L2 if it fits) and once rotating among
copies that together exceed the L2 several times (cold: every call streams W from HBM).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from executor.calibrate.grids import CalibrationGrid
from executor.calibrate.timing import Device, bursts, median_s, rotation_copies, time_burst_s

Progress = Callable[[str], None]


def measure_l2(device: Device, grid: CalibrationGrid, budget_bytes: int, seed: int,
               progress: Progress) -> dict[str, Any]:
    generator = torch.Generator(device=device.torch_device).manual_seed(seed)
    dtype_bytes = torch.finfo(device.dtype).bits // 8
    k = grid.l2_k
    x = torch.randn(grid.l2_rows, k, device=device.torch_device, dtype=device.dtype,
                    generator=generator)  # (rows, k)
    count = 2 * grid.calls_per_timing
    points = []
    for weight_bytes in grid.l2_weight_bytes:
        n = max(1, weight_bytes // (k * dtype_bytes))
        actual_bytes = n * k * dtype_bytes
        copies = rotation_copies(actual_bytes, device, budget_bytes, max_copies=256)
        weights = [torch.randn(n, k, device=device.torch_device, dtype=device.dtype, generator=generator)
                   for _ in range(copies)]  # (n, k) each
        hot_calls: list[Callable[[], object]] = [partial(F.linear, x, weights[0])] * count
        cold_calls: list[Callable[[], object]] = [
            partial(F.linear, x, weights[i % copies]) for i in range(bursts(count, copies))]
        hot_s = median_s(time_burst_s(hot_calls, device, grid.repeats))
        cold_s = median_s(time_burst_s(cold_calls, device, grid.repeats))
        points.append({"weight_bytes": actual_bytes, "n": n, "k": k, "rows": grid.l2_rows,
                       "hot_time_s": hot_s, "cold_time_s": cold_s, "rotation_copies": copies,
                       "hot_bw_bytes_per_s": actual_bytes / hot_s, "cold_bw_bytes_per_s": actual_bytes / cold_s})
        progress(f"l2 {actual_bytes / 2**20:.2f} MiB: hot {hot_s * 1e6:.1f} us, cold {cold_s * 1e6:.1f} us "
                 f"(x{cold_s / hot_s:.2f})")
        del weights, hot_calls, cold_calls
    return {"nominal_l2_bytes": device.l2_bytes, "points": points}
