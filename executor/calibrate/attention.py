"""scaled_dot_product_attention time: decode (one new token against a context) and causal prefill."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from executor.calibrate.grids import AttentionShape, CalibrationGrid
from executor.calibrate.timing import Device, bursts, median_s, rotation_copies, time_burst_s

Progress = Callable[[str], None]


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    # q: (batch, heads, new_tokens, head_dim); k, v: (batch, kv_heads, context_len, head_dim)
    grouped = k.shape[1] != q.shape[1]  # grouped-query attention
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=grouped)


def _time_attention_s(shape: AttentionShape, batch: int, new_tokens: int, context_len: int,
                      device: Device, grid: CalibrationGrid, budget_bytes: int,
                      generator: torch.Generator) -> float:
    dtype_bytes = torch.finfo(device.dtype).bits // 8
    kv_bytes = 2 * batch * shape.kv_heads * context_len * shape.head_dim * dtype_bytes
    copies = rotation_copies(kv_bytes, device, budget_bytes) if new_tokens == 1 else 1

    def rand(heads: int, tokens: int) -> torch.Tensor:  # (batch, heads, tokens, head_dim)
        return torch.randn(batch, heads, tokens, shape.head_dim, device=device.torch_device,
                           dtype=device.dtype, generator=generator)

    q = rand(shape.heads, new_tokens)
    kvs = [(rand(shape.kv_heads, context_len), rand(shape.kv_heads, context_len)) for _ in range(copies)]
    causal = new_tokens > 1
    count = grid.calls_per_timing if new_tokens == 1 else 2
    calls: list[Callable[[], object]] = []
    for i in range(bursts(count, copies)):
        k, v = kvs[i % copies]
        calls.append(partial(_sdpa, q, k, v, causal))
    time_s = median_s(time_burst_s(calls, device, grid.repeats))
    del q, kvs, calls
    return time_s


def measure_attention(device: Device, grid: CalibrationGrid, budget_bytes: int, seed: int,
                      progress: Progress) -> dict[str, Any]:
    generator = torch.Generator(device=device.torch_device).manual_seed(seed)
    points: list[dict[str, Any]] = []
    for shape in grid.attention_shapes:
        for batch in grid.decode_batches:
            for context_len in grid.decode_contexts:
                time_s = _time_attention_s(shape, batch, 1, context_len, device, grid, budget_bytes, generator)
                points.append({"shape": shape.name, "batch": batch, "heads": shape.heads,
                               "kv_heads": shape.kv_heads, "head_dim": shape.head_dim, "new_tokens": 1,
                               "context_len": context_len, "time_s": time_s})
            progress(f"attention decode {shape.name} batch={batch}: "
                     f"ctx={grid.decode_contexts[-1]} {points[-1]['time_s'] * 1e6:.1f} us")
        for seq in grid.prefill_seqs:
            time_s = _time_attention_s(shape, 1, seq, seq, device, grid, budget_bytes, generator)
            points.append({"shape": shape.name, "batch": 1, "heads": shape.heads, "kv_heads": shape.kv_heads,
                           "head_dim": shape.head_dim, "new_tokens": seq, "context_len": seq, "time_s": time_s})
        progress(f"attention prefill {shape.name}: seq={grid.prefill_seqs[-1]} {points[-1]['time_s'] * 1e3:.2f} ms")
    return {"dtype": str(device.dtype), "points": points}
