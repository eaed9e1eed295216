"""GEMM throughput over the decode and prefill grids, weights streamed cold from memory.

``y = x @ W.T`` (``torch.nn.functional.linear``, as the model's linear layers run it) with W of
shape (n, k). Each call reads a different copy of W, rotated among copies that together exceed
the L2 several times, so a decode GEMM streams its weight from HBM as real decode does.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from executor.calibrate.grids import CalibrationGrid, WeightShape
from executor.calibrate.timing import Device, bursts, median_s, rotation_copies, time_burst_s

Progress = Callable[[str], None]


def _linear_calls(x: torch.Tensor, weights: list[torch.Tensor], count: int) -> list[Callable[[], object]]:
    calls: list[Callable[[], object]] = []
    for i in range(bursts(count, len(weights))):
        w = weights[i % len(weights)]
        calls.append(partial(F.linear, x, w))  # (m, k) @ (k, n) -> (m, n)
    return calls


def measure_shape(shape: WeightShape, rows: tuple[int, ...], device: Device, grid: CalibrationGrid,
                  budget_bytes: int, generator: torch.Generator) -> list[dict[str, Any]]:
    """Median time of every M in ``rows`` against one weight shape."""
    bytes_per_weight = shape.n * shape.k * torch.finfo(device.dtype).bits // 8
    copies = rotation_copies(bytes_per_weight, device, budget_bytes)
    weights = [torch.randn(shape.n, shape.k, device=device.torch_device, dtype=device.dtype,
                           generator=generator) for _ in range(copies)]  # (n, k) each
    points = []
    for m in rows:
        x = torch.randn(m, shape.k, device=device.torch_device, dtype=device.dtype,
                        generator=generator)  # (m, k)
        # decode GEMMs last microseconds: many per burst; a prefill GEMM one rotation of weights
        count = grid.calls_per_timing if m <= max(grid.decode_rows) else 2
        per_call_s = time_burst_s(_linear_calls(x, weights, count), device, grid.repeats)
        time_s = median_s(per_call_s)
        points.append({"shape": shape.name, "m": m, "n": shape.n, "k": shape.k, "time_s": time_s,
                       "min_time_s": min(per_call_s), "rotation_copies": copies,
                       "flops_per_s": 2.0 * m * shape.n * shape.k / time_s})
        del x
    del weights
    return points


def measure_gemm(device: Device, grid: CalibrationGrid, budget_bytes: int, seed: int,
                 progress: Progress) -> dict[str, Any]:
    generator = torch.Generator(device=device.torch_device).manual_seed(seed)
    rows = tuple(sorted(set(grid.decode_rows) | set(grid.prefill_rows)))
    points: list[dict[str, Any]] = []
    for index, shape in enumerate(grid.gemm_shapes):
        shape_points = measure_shape(shape, rows, device, grid, budget_bytes, generator)
        points += shape_points
        best = max(p["flops_per_s"] for p in shape_points)
        progress(f"gemm {index + 1}/{len(grid.gemm_shapes)} {shape.name} n={shape.n} k={shape.k}: "
                 f"m=1 {shape_points[0]['time_s'] * 1e6:.1f} us, best {best / 1e12:.1f} TFLOP/s")
    return {"dtype": str(device.dtype), "decode_rows": list(grid.decode_rows),
            "prefill_rows": list(grid.prefill_rows), "points": points}
