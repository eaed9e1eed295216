"""The kernels of each shape-study layer shape timed alone: its four GEMMs over decode and prefill row
counts (weights streamed cold from HBM), and attention over a grid of batch and context (decode, every
candidate path, the fastest kept as the executor would choose it) and prompt lengths (prefill).

The same measurement functions as ``layerwise calibrate`` (:mod:`executor.calibrate.gemm`,
:mod:`executor.calibrate.attention`); points whose KV cache would exceed ``MAX_KV_BYTES`` are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from executor.attention import decode_candidates, prefill_candidates
from executor.calibrate.attention import attention_point, decode_point, prefill_point
from executor.calibrate.gemm import measure_shape
from executor.calibrate.grids import AttentionShape, CalibrationGrid, WeightShape, model_weight_shapes
from executor.calibrate.timing import Device
from shape_study.families import Shape

MAX_KV_BYTES = 8 * 1024**3
GPU_ROWS = ((1, 4, 16, 64, 256), (1024, 4096, 16384))
GPU_BATCHES, GPU_CONTEXTS, GPU_PROMPTS = (1, 8, 32, 128), (1024, 4096, 16384, 65536), (1024, 4096)
CPU_ROWS = ((1, 4), (32,))
CPU_BATCHES, CPU_CONTEXTS, CPU_PROMPTS = (1, 2), (16, 64), (32,)
Progress = Callable[[str], None]


def _grid(shape: Shape, device: Device) -> CalibrationGrid:
    model = shape.model(2 if device.is_cuda else 4)
    decode_rows, prefill_rows = GPU_ROWS if device.is_cuda else CPU_ROWS
    batches, contexts, prompts = (GPU_BATCHES, GPU_CONTEXTS, GPU_PROMPTS) if device.is_cuda else (
        CPU_BATCHES, CPU_CONTEXTS, CPU_PROMPTS)
    return CalibrationGrid(
        gemm_shapes=tuple(s for s in model_weight_shapes(model, max_tp=1)),
        decode_rows=decode_rows, prefill_rows=prefill_rows,
        attention_shapes=(AttentionShape(shape.name, shape.num_heads, shape.num_kv_heads, shape.head_dim),),
        decode_batches=batches, decode_contexts=contexts, prefill_seqs=prompts,
        hbm_copy_bytes=(), l2_weight_bytes=(), l2_rows=1, l2_k=1, launch_counts=(), collective_bytes=(),
        repeats=5 if device.is_cuda else 3, calls_per_timing=16 if device.is_cuda else 4)


def measure_kernels(shape: Shape, device: Device, budget_bytes: int, seed: int, progress: Progress) -> dict[str, Any]:
    """Every GEMM and attention point of one layer shape; failures are recorded, never raised."""
    grid = _grid(shape, device)
    generator = torch.Generator(device=device.torch_device).manual_seed(seed)
    gemm: list[dict[str, Any]] = []
    rows = tuple(sorted(set(grid.decode_rows) | set(grid.prefill_rows)))
    for weight in grid.gemm_shapes:
        gemm += measure_shape(WeightShape(weight.name, weight.n, weight.k), rows, device, grid, budget_bytes,
                              generator)
    attention: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    (att,) = grid.attention_shapes
    group = att.heads // att.kv_heads
    dtype_bytes = torch.finfo(device.dtype).bits // 8
    for batch in grid.decode_batches:
        for context in grid.decode_contexts:
            if 2 * batch * att.kv_heads * context * att.head_dim * dtype_bytes > MAX_KV_BYTES:
                continue
            _attention(lambda b=batch, c=context: decode_point(att, b, c, device, grid, budget_bytes, generator),
                       (att, batch, 1, context, decode_candidates(group)), attention, failed, device)
    for prompt in grid.prefill_seqs:
        _attention(lambda p=prompt: prefill_point(att, p, device, grid, generator),
                   (att, 1, prompt, prompt, prefill_candidates(group)), attention, failed, device)
    progress(f"kernels {shape.name}: {len(gemm)} GEMM points, {len(attention)} attention points"
             + (f", {len(failed)} failed" if failed else ""))
    return {"shape": shape.name, "family": shape.family, "model": shape.model(dtype_bytes).to_dict(),
            "dtype": str(device.dtype), "gemm": gemm, "attention": attention, "failed": failed}


def _attention(measure: Callable[[], Any], where: tuple[Any, ...], points: list[dict[str, Any]],
               failed: list[dict[str, Any]], device: Device) -> None:
    att, batch, new_tokens, context, candidates = where
    try:
        times = measure()
    except RuntimeError as exc:  # out of memory while allocating the point's tensors
        failed.append({"batch": batch, "new_tokens": new_tokens, "context_len": context,
                       "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"})
        if device.is_cuda:
            torch.cuda.empty_cache()
        return
    point = attention_point(att, batch, new_tokens, context, times, candidates)
    if point is None:
        failed.append({"batch": batch, "new_tokens": new_tokens, "context_len": context, "errors": times.errors})
    else:
        points.append(point)
