"""Roofline times of kernels (pure): arithmetic at the achieved rate against bytes at the HBM rates.

``gemm_roofline_s`` and ``attention_roofline_s`` are what a measured kernel time is compared
with (:mod:`sim.costs.measured`); :func:`sim.costs.kernels.op_cost` prices operators with the
same pieces: :func:`gemm_efficiency`, :func:`hbm_time_s` and :func:`prefill_time_scale`.
"""

from __future__ import annotations

from sim.params import SimParams
from topology.ops import attention_pairs
from topology.workload import TokenShape


def gemm_efficiency(rows: int, params: SimParams) -> float:
    return params.compute_efficiency * min(1.0, rows / params.gemm_min_rows)


def hbm_time_s(read_bytes: float, read_write_bytes: float, params: SimParams) -> float:
    """HBM time of pure reads (weights, KV cache) plus read + write traffic (activations, KV appends)."""
    return (read_bytes / params.hbm_effective_read_bw_bytes_per_s
            + read_write_bytes / params.hbm_effective_bw_bytes_per_s)


def prefill_time_scale(kind: str, shape: TokenShape, params: SimParams) -> float:
    """The fitted prefill correction of an operator kind; 1 in decode (one new token)."""
    if shape.new_tokens <= 1:
        return 1.0
    if kind == "gemm":
        return params.prefill_gemm_time_scale
    if kind == "attention":
        return params.prefill_attention_time_scale
    return params.prefill_elementwise_time_scale


def gemm_roofline_s(m: int, n: int, k: int, dtype_bytes: int, params: SimParams) -> float:
    """Roofline time of an (m x k) @ (k x n) GEMM streaming everything from HBM, no launch."""
    compute_s = 2.0 * m * n * k / (params.peak_flops_per_s * gemm_efficiency(m, params))
    memory_s = hbm_time_s(k * n * dtype_bytes, (m * k + m * n) * dtype_bytes, params)
    return max(compute_s, memory_s)


def attention_roofline_s(
    batch: int, heads: int, kv_heads: int, head_dim: int, new_tokens: int, context_len: int,
    dtype_bytes: int, params: SimParams,
) -> float:
    shape = TokenShape(batch=batch, new_tokens=new_tokens, context_len=context_len)
    flops = 4.0 * batch * heads * head_dim * attention_pairs(shape)
    kv_read = batch * context_len * 2 * kv_heads * head_dim * dtype_bytes
    kv_write = shape.tokens * 2 * kv_heads * head_dim * dtype_bytes
    act = 2 * shape.tokens * heads * head_dim * dtype_bytes
    return max(flops / (params.peak_flops_per_s * params.attention_efficiency),
               hbm_time_s(kv_read, kv_write + act, params))
