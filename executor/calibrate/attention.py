"""Attention time per shape, for every candidate path: decode (one new token against a context)
and causal prefill. The fastest path is the shape's choice (:func:`executor.attention.pick_fastest`).

The same measurement chooses the path of a run (``executor.attention_choice``, on the run's own
shape and KV cache) and fills the profile's attention points here (the calibrated shapes): a
point's ``time_s`` is its fastest path's, the path the executor would run, and ``paths_s`` keeps
every candidate's time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from executor.attention import (
    decode_attention,
    decode_candidates,
    pick_fastest,
    prefill_attention,
    prefill_candidates,
)
from executor.calibrate.grids import AttentionShape, CalibrationGrid
from executor.calibrate.timing import Device, bursts, median_s, rotation_copies, time_burst_s

Progress = Callable[[str], None]
Call = Callable[[], object]


@dataclass(frozen=True)
class PathTimes:
    """Seconds per call of each candidate that ran, and the error of each that could not."""

    times_s: dict[str, float]
    errors: dict[str, str]

    def fastest(self, candidates: tuple[str, ...]) -> str | None:
        return pick_fastest(self.times_s, candidates)


def time_paths_s(calls_by_path: Mapping[str, Sequence[Call]], device: Device, repeats: int,
                 use_graph: bool = True) -> PathTimes:
    """Median seconds per call of each path's burst; a path that raises (no kernel for it, out of
    memory) is recorded with its error instead of stopping the others."""
    times_s: dict[str, float] = {}
    errors: dict[str, str] = {}
    for path, calls in calls_by_path.items():
        try:
            times_s[path] = median_s(time_burst_s(calls, device, repeats, use_graph=use_graph))
        except RuntimeError as exc:  # torch.OutOfMemoryError and "no available kernel" are RuntimeErrors
            errors[path] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            if device.is_cuda:
                torch.cuda.synchronize(device.torch_device)
                torch.cuda.empty_cache()
    return PathTimes(times_s, errors)


def decode_point(shape: AttentionShape, batch: int, context_len: int, device: Device, grid: CalibrationGrid,
                  budget_bytes: int, generator: torch.Generator) -> PathTimes:
    dtype_bytes = torch.finfo(device.dtype).bits // 8
    kv_bytes = 2 * batch * shape.kv_heads * context_len * shape.head_dim * dtype_bytes
    copies = rotation_copies(kv_bytes, device, budget_bytes)

    def rand(*dims: int) -> torch.Tensor:
        return torch.randn(*dims, device=device.torch_device, dtype=device.dtype, generator=generator)

    q = rand(batch, shape.heads, shape.head_dim)  # (b, H, D)
    kvs = [(rand(batch, shape.kv_heads, context_len, shape.head_dim),
            rand(batch, shape.kv_heads, context_len, shape.head_dim)) for _ in range(copies)]  # (b, K, ctx, D)
    count = bursts(grid.calls_per_timing, copies)
    calls = {path: [partial(decode_attention, path, q, *kvs[i % copies], None) for i in range(count)]
             for path in decode_candidates(shape.heads // shape.kv_heads)}
    times = time_paths_s(calls, device, grid.repeats)
    del q, kvs, calls
    return times


def prefill_point(shape: AttentionShape, seq: int, device: Device, grid: CalibrationGrid,
                   generator: torch.Generator) -> PathTimes:
    def rand(heads: int) -> torch.Tensor:  # (1, heads, seq, head_dim)
        return torch.randn(1, heads, seq, shape.head_dim, device=device.torch_device, dtype=device.dtype,
                           generator=generator)

    q, k, v = rand(shape.heads), rand(shape.kv_heads), rand(shape.kv_heads)
    calls = {path: [partial(prefill_attention, path, q, k, v)] * 2
             for path in prefill_candidates(shape.heads // shape.kv_heads)}
    times = time_paths_s(calls, device, grid.repeats)
    del q, k, v, calls
    return times


def attention_point(shape: AttentionShape, batch: int, new_tokens: int, context_len: int, times: PathTimes,
           candidates: tuple[str, ...]) -> dict[str, Any] | None:
    path = times.fastest(candidates)
    if path is None:
        return None
    point: dict[str, Any] = {"shape": shape.name, "batch": batch, "heads": shape.heads, "kv_heads": shape.kv_heads,
                             "head_dim": shape.head_dim, "new_tokens": new_tokens, "context_len": context_len,
                             "time_s": times.times_s[path], "path": path, "paths_s": dict(times.times_s)}
    if times.errors:
        point["path_errors"] = dict(times.errors)
    return point


def measure_attention(device: Device, grid: CalibrationGrid, budget_bytes: int, seed: int,
                      progress: Progress) -> dict[str, Any]:
    generator = torch.Generator(device=device.torch_device).manual_seed(seed)
    points: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for shape in grid.attention_shapes:
        group_size = shape.heads // shape.kv_heads
        for batch in grid.decode_batches:
            for context_len in grid.decode_contexts:
                times = decode_point(shape, batch, context_len, device, grid, budget_bytes, generator)
                point = attention_point(shape, batch, 1, context_len, times, decode_candidates(group_size))
                if point is None:
                    failed.append({"shape": shape.name, "batch": batch, "context_len": context_len,
                                   "errors": times.errors})
                else:
                    points.append(point)
            if points:
                progress(f"attention decode {shape.name} batch={batch}: ctx={points[-1]['context_len']} "
                         f"{points[-1]['time_s'] * 1e6:.1f} us ({points[-1]['path']})")
        for seq in grid.prefill_seqs:
            times = prefill_point(shape, seq, device, grid, generator)
            point = attention_point(shape, 1, seq, seq, times, prefill_candidates(group_size))
            if point is None:
                failed.append({"shape": shape.name, "batch": 1, "prompt_len": seq, "errors": times.errors})
            else:
                points.append(point)
        if points:
            progress(f"attention prefill {shape.name}: seq={points[-1]['context_len']} "
                     f"{points[-1]['time_s'] * 1e3:.2f} ms ({points[-1]['path']})")
    out: dict[str, Any] = {"dtype": str(device.dtype), "points": points}
    if failed:
        out["failed_points"] = failed
    return out
