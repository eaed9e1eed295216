"""Time and memory traffic of one operator on one device (pure; no SimPy).

Kernel time (roofline plus launch):

    t = max(flops / (peak * eff), t_mem) * prefill_scale + launch
    t_mem = hit * W / l2_bw + ((1 - hit) * W + KV_read) / (hbm_read_bw * hbm_eff)
            + (A + KV_write) / (hbm_bw * hbm_eff)

``W`` weight bytes, ``A`` activation bytes (read and written), ``KV_read`` / ``KV_write``
KV-cache bytes read and appended, ``hit`` the L2 hit fraction of the weights
(:mod:`sim.costs.residency`). Pure reads stream at the HBM read rate, read + write traffic at
the copy rate (:func:`hbm_time_s`). ``prefill_scale`` is 1 in decode and, in a prefill pass,
the fitted prefill time scale of the operator's kind (:func:`prefill_time_scale`). ``eff`` depends on the
shape: GEMMs ``compute_efficiency * min(1, m / gemm_min_rows)`` (skinny decode GEMMs pay for
a whole tile and are bandwidth-bound anyway), attention ``attention_efficiency``,
elementwise operators are pure bandwidth. ``launch`` is the per-kernel eager or CUDA-graph
cost. CUDA-graph launch cost is paid on the GPU, kernel after kernel, so it adds. Eager launch
cost is paid on the host, which issues kernels asynchronously ahead of the GPU
(:func:`overlap_eager_launches`): only the time the GPU waits for the host shows.
With a profile's ``gemm_points`` / ``attention_points`` the roofline time is scaled by
the measured-to-roofline ratio of the nearest measured shapes (inverse log-distance
weighting of the two nearest), so measurements replace the efficiency guesses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from sim.costs.model import CostModel
from sim.params import SimParams
from topology.ops import (
    Op,
    attention_pairs,
    op_activation_bytes,
    op_flops,
    op_kv_read_bytes,
    op_kv_write_bytes,
    op_weight_bytes,
)
from topology.workload import TokenShape


@dataclass(frozen=True)
class OpCost:
    """One kernel on one device; the ``*_s`` parts add up to ``time_s``."""

    name: str
    kind: str
    time_s: float
    flops: float
    weight_bytes: int
    activation_bytes: int
    kv_bytes: int
    l2_bytes: float  # weight bytes served by L2
    hbm_bytes: float  # everything else
    compute_s: float  # time attributed to arithmetic (compute-bound kernels)
    weights_s: float  # time attributed to reading weights (memory-bound kernels)
    kv_s: float
    activations_s: float
    launch_s: float


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


@dataclass(frozen=True)
class LogPoints:
    """Measured shapes as arrays: the log of each dimension (one row per shape) and measured / roofline."""

    log_dims: np.ndarray
    ratios: np.ndarray

    @staticmethod
    def of(points: Sequence[tuple[Sequence[int], float]]) -> LogPoints:
        return LogPoints(np.array([_log_dims(dims) for dims, _ in points], dtype=float),
                         np.array([ratio for _, ratio in points], dtype=float))


def _log_dims(dims: Sequence[int]) -> tuple[float, ...]:
    return tuple(math.log(max(d, 1)) for d in dims)


def measured_ratio(query: Sequence[int], points: Sequence[tuple[Sequence[int], float]]) -> float | None:
    """Inverse log-distance weighted ratio of the two measured shapes nearest to ``query``."""
    return _nearest_ratio(_log_dims(query), LogPoints.of(points)) if points else None


def _nearest_ratio(log_query: tuple[float, ...], points: LogPoints) -> float | None:
    if not len(points.ratios):
        return None
    distances = np.sqrt(((points.log_dims - np.array(log_query)) ** 2).sum(axis=1))
    order = np.lexsort((points.ratios, distances))  # nearest first; equal distances: smaller ratio first
    first = order[0]
    if distances[first] == 0.0:
        exact = np.flatnonzero(distances == 0.0)[0]  # the first measured shape equal to the query
        return float(points.ratios[exact])
    nearest = [(float(distances[i]), float(points.ratios[i])) for i in order[:2]]
    weights = [1.0 / d for d, _ in nearest]
    return sum(w * r for w, (_, r) in zip(weights, nearest, strict=True)) / sum(weights)


def _measured_scale(op: Op, shape: TokenShape, cost: CostModel) -> float:
    """Measured time / roofline time near this operator's shape (1.0 without measurements).

    Memoized in ``cost.measured_scales``: every layer of a stage, and every stage pass of a
    growing context, asks again for the same shapes.
    """
    query: tuple[int, ...]
    if op.kind == "gemm" and cost.gemm_points:
        query = (shape.tokens, op.out_features, op.in_features)
    elif op.kind == "attention" and cost.attention_points:
        query = (shape.batch, op.heads, op.kv_heads, op.head_dim, shape.new_tokens, shape.context_len)
    else:
        return 1.0
    key = (op.kind, op.dtype_bytes, query)
    scale = cost.measured_scales.get(key)
    if scale is None:
        points = cost.measured_points.get((op.kind, op.dtype_bytes))
        if points is None:
            points = cost.measured_points[(op.kind, op.dtype_bytes)] = LogPoints.of(
                _measured_points(op.kind, op.dtype_bytes, cost))
        ratio = _nearest_ratio(_log_dims(query), points)
        scale = cost.measured_scales[key] = 1.0 if ratio is None else ratio
    return scale


def _measured_points(kind: str, dtype_bytes: int, cost: CostModel) -> list[tuple[tuple[int, ...], float]]:
    """The profile's measured shapes of one kind, each with its measured / roofline ratio."""
    params = cost.params
    if kind == "gemm":
        return [((p.m, p.n, p.k), p.time_s / gemm_roofline_s(p.m, p.n, p.k, dtype_bytes, params))
                for p in cost.gemm_points]
    return [((a.batch, a.heads, a.kv_heads, a.head_dim, a.new_tokens, a.context_len),
             a.time_s / attention_roofline_s(a.batch, a.heads, a.kv_heads, a.head_dim, a.new_tokens,
                                             a.context_len, dtype_bytes, params))
            for a in cost.attention_points]


def op_cost(op: Op, shape: TokenShape, cost: CostModel, weight_hit_fraction: float) -> OpCost:
    """Time and traffic of one compute operator (not a collective) at ``shape``."""
    params = cost.params
    flops = op_flops(op, shape)
    weights = op_weight_bytes(op)
    activations = op_activation_bytes(op, shape)
    kv_read, kv_write = op_kv_read_bytes(op, shape), op_kv_write_bytes(op, shape)
    kv = kv_read + kv_write
    l2_weight_bytes = weight_hit_fraction * weights
    weights_s = l2_weight_bytes / params.l2_bw_bytes_per_s + hbm_time_s(weights - l2_weight_bytes, 0.0, params)
    kv_s = hbm_time_s(kv_read, kv_write, params)
    activations_s = hbm_time_s(0.0, activations, params)
    memory_s = weights_s + kv_s + activations_s
    if op.kind == "gemm":
        compute_s = flops / (params.peak_flops_per_s * gemm_efficiency(shape.tokens, params))
    elif op.kind == "attention":
        compute_s = flops / (params.peak_flops_per_s * params.attention_efficiency)
    else:
        compute_s = 0.0  # elementwise: bandwidth-bound by construction
    scale = _measured_scale(op, shape, cost) * prefill_time_scale(op.kind, shape, params)
    launch_s = cost.launch_overhead_s
    if compute_s >= memory_s:
        parts = (compute_s * scale, 0.0, 0.0, 0.0)
    else:
        parts = (0.0, weights_s * scale, kv_s * scale, activations_s * scale)
    return OpCost(
        name=op.name,
        kind=op.kind,
        time_s=sum(parts) + launch_s,
        flops=flops,
        weight_bytes=weights,
        activation_bytes=activations,
        kv_bytes=kv,
        l2_bytes=l2_weight_bytes,
        hbm_bytes=weights - l2_weight_bytes + activations + kv,
        compute_s=parts[0],
        weights_s=parts[1],
        kv_s=parts[2],
        activations_s=parts[3],
        launch_s=launch_s,
    )


def overlap_eager_launches(ops: Sequence[OpCost], host_launch_s: float) -> tuple[OpCost, ...]:
    """Eager mode: the host issues kernel ``i`` at ``(i + 1) * host_launch_s`` (after the
    segment starts) and the GPU runs it at ``max(end of kernel i-1, its issue time)``.

    Returns the ops with ``launch_s`` replaced by the GPU's wait for the host before each
    kernel (the exposed launch cost) and ``time_s`` = kernel time + that wait, so the ops
    still add up to the segment's duration: large kernels hide the host entirely, small
    ones run at the host's issue rate.
    """
    result = []
    gpu_end_s = 0.0
    for index, op in enumerate(ops):
        kernel_s = op.time_s - op.launch_s
        issue_s = (index + 1) * host_launch_s
        start_s = max(gpu_end_s, issue_s)
        wait_s = start_s - gpu_end_s
        gpu_end_s = start_s + kernel_s
        result.append(replace(op, time_s=kernel_s + wait_s, launch_s=wait_s))
    return tuple(result)
