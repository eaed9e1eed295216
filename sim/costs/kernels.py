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
the measured-to-roofline ratio of the nearest measured shapes (:mod:`sim.costs.measured`),
so measurements replace the efficiency guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sim.costs.measured import MeasuredTable, attention_table, gemm_table, log_dims, nearest_ratio
from sim.costs.memo import PriceMemo
from sim.costs.model import CostModel
from sim.costs.roofline import gemm_efficiency, hbm_time_s, prefill_time_scale
from topology.ops import (
    Op,
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


def measured_scale(op: Op, shape: TokenShape, cost: CostModel, memo: PriceMemo | None = None) -> float:
    """Measured time / roofline time near this operator's shape (1.0 without measurements);
    remembered in ``memo``: every layer of a stage, and every pass of a growing context, asks again."""
    query: tuple[int, ...]
    if op.kind == "gemm" and cost.gemm_points:
        query = (shape.tokens, op.out_features, op.in_features)
    elif op.kind == "attention" and cost.attention_points:
        query = (shape.batch, op.heads, op.kv_heads, op.head_dim, shape.new_tokens, shape.context_len)
    else:
        return 1.0
    memo = memo if memo is not None else PriceMemo()
    key = (op.kind, op.dtype_bytes, query)
    scale = memo.scales.get(key)
    if scale is None:
        table: MeasuredTable | None = memo.tables.get((op.kind, op.dtype_bytes))
        if table is None:
            table = memo.tables[(op.kind, op.dtype_bytes)] = (
                gemm_table(cost.gemm_points, op.dtype_bytes, cost.params) if op.kind == "gemm"
                else attention_table(cost.attention_points, op.dtype_bytes, cost.params))
        ratio = nearest_ratio(log_dims(query), table)
        scale = memo.scales[key] = 1.0 if ratio is None else ratio
    return scale


def op_cost(op: Op, shape: TokenShape, cost: CostModel, weight_hit_fraction: float,
            memo: PriceMemo | None = None) -> OpCost:
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
    scale = measured_scale(op, shape, cost, memo) * prefill_time_scale(op.kind, shape, params)
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
