"""Time and memory traffic of one operator on one device (pure; no SimPy).

An operator runs as the kernels the executor launches for it (:func:`topology.ops.op_kernels`):
one for a GEMM or a norm, two for a gated activation (SiLU, then the gate product), the attention
kernel plus the two copies that append K and V to the cache. Each kernel pays a launch
(``launch``: on the GPU, kernel after kernel, inside a CUDA graph; on the host, overlapped, when
eager: :func:`overlap_eager_launches`) and runs for its **base** time times a **correction**:

========================  =================================================================================
kernel                    base time
========================  =================================================================================
GEMM (m x k) @ (k x n)    ``max(gemm_latency + W_hbm / (read_bw * gemm_bw_eff) + W_l2 / l2_bw + A / copy_bw,
                          flops / (peak * compute_eff * min(1, m / gemm_min_rows)))``
attention, decode         ``max(attention_latency + (KV_read + A) / (read_bw * attention_bw_eff),
                          flops / (peak * attention_eff))``
attention, prefill        ``attention_latency + max(flops / (peak * attention_eff), (KV_read + A) / read_bw)``
K and V appended          two copies of ``kv_write_latency + (KV_write / 2) / copy_bw``
norm                      ``norm_latency + (A + W) / copy_bw``
activation, residual      ``elementwise_latency + A / copy_bw`` per kernel
========================  =================================================================================

``W`` weight bytes (``W_l2`` the share L2 serves, :mod:`sim.costs.residency`), ``A`` activation bytes,
``KV_read`` / ``KV_write`` the cache read and appended; ``read_bw`` / ``copy_bw`` the HBM read and copy
rates (:func:`sim.costs.roofline.hbm_time_s`). The latencies and efficiencies are named parameters:
a profile's measured kernels fit them (:func:`sim.costs.model.build_cost_model`), and its points
correct the base near their shapes (:mod:`sim.costs.measured`), so that a shape no one measured is
priced by the fitted base and a measured one as measured. A prefill pass scales each kind by its
fitted ``prefill_*_time_scale``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sim.costs.measured import NO_EVIDENCE, Correction, attention_features, gemm_features
from sim.costs.memo import PriceMemo
from sim.costs.model import CostModel
from sim.costs.roofline import gemm_efficiency, hbm_time_s, prefill_time_scale
from sim.params import SimParams
from topology.ops import (
    Op,
    op_activation_bytes,
    op_flops,
    op_kernels,
    op_kv_read_bytes,
    op_kv_write_bytes,
    op_weight_bytes,
)
from topology.workload import TokenShape


@dataclass(frozen=True)
class OpCost:
    """One operator's kernels on one device; the ``*_s`` parts add up to ``time_s``."""

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
    kernels: int = 1  # kernels launched for it
    evidence: float = 0.0  # measured kernels behind its correction (sim.costs.measured.Correction.weight)


def _correction(op: Op, shape: TokenShape, cost: CostModel, size: float, memo: PriceMemo | None) -> Correction:
    """The measured correction near the operator's shape (GEMM and attention; remembered in ``memo``)."""
    if op.dtype_bytes != cost.measured_dtype_bytes:
        return NO_EVIDENCE  # the points were timed in another dtype
    if op.kind == "gemm":
        table, features = cost.gemm_table, gemm_features(op.out_features, op.in_features)
    elif op.kind == "attention":
        table = cost.decode_attention_table if shape.new_tokens == 1 else cost.prefill_attention_table
        features = attention_features(op.heads, op.kv_heads, op.head_dim)
    else:
        return NO_EVIDENCE
    if not table.curves:
        return NO_EVIDENCE
    key = (op.kind, shape.new_tokens == 1, features, round(math.log(max(size, 1.0)), 12))
    if memo is not None and key in memo.scales:
        return memo.scales[key]
    found = table.correction(features, math.log(max(size, 1.0)))
    if memo is not None:
        memo.scales[key] = found
    return found


@dataclass(frozen=True)
class _Parts:
    """A kernel time before its correction, by cause (seconds)."""

    compute_s: float = 0.0
    weights_s: float = 0.0
    kv_s: float = 0.0
    activations_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.compute_s + self.weights_s + self.kv_s + self.activations_s

    def scaled(self, factor: float) -> _Parts:
        return _Parts(self.compute_s * factor, self.weights_s * factor, self.kv_s * factor, self.activations_s * factor)


def _memory_bound(latency_s: float, weights_s: float, kv_s: float, activations_s: float) -> _Parts:
    """A memory-bound kernel; its fixed latency is attributed to what it mostly moves."""
    parts = [weights_s, kv_s, activations_s]
    parts[max(range(3), key=lambda i: parts[i])] += latency_s
    return _Parts(0.0, *parts)


def _gemm(op: Op, shape: TokenShape, params: SimParams, weights: float, l2_bytes: float,
          activations: int, flops: float) -> tuple[_Parts, float]:
    read_bw = params.hbm_effective_read_bw_bytes_per_s * params.gemm_bw_efficiency
    weights_s = l2_bytes / params.l2_bw_bytes_per_s + (weights - l2_bytes) / read_bw
    memory = _memory_bound(params.gemm_latency_s, weights_s, 0.0, hbm_time_s(0.0, activations, params))
    compute_s = flops / (params.peak_flops_per_s * gemm_efficiency(shape.tokens, params))
    return (_Parts(compute_s=compute_s) if compute_s >= memory.total_s else memory), float(shape.tokens)


def _attention(op: Op, shape: TokenShape, params: SimParams, activations: int, kv_read: int,
               flops: float) -> tuple[_Parts, float]:
    compute_s = flops / (params.peak_flops_per_s * params.attention_efficiency)
    kv_s = kv_read / (params.hbm_effective_read_bw_bytes_per_s * params.attention_bw_efficiency)
    activations_s = hbm_time_s(0.0, activations, params)  # Q in, O out
    if shape.new_tokens == 1:  # decode: stream the cache
        memory = _memory_bound(params.attention_latency_s, 0.0, kv_s, activations_s)
        return (_Parts(compute_s=compute_s) if compute_s >= memory.total_s else memory), float(kv_read)
    if compute_s >= kv_s + activations_s:
        return _Parts(compute_s=params.attention_latency_s + compute_s), flops
    return _memory_bound(params.attention_latency_s, 0.0, kv_s, activations_s), flops


def _elementwise(op: Op, params: SimParams, weights: int, l2_bytes: float, activations: int) -> _Parts:
    latency_s = params.norm_latency_s if op.kind == "norm" else params.elementwise_latency_s
    weights_s = l2_bytes / params.l2_bw_bytes_per_s + hbm_time_s(weights - l2_bytes, 0.0, params)
    return _Parts(weights_s=weights_s,
                  activations_s=op_kernels(op) * latency_s + hbm_time_s(0.0, activations, params))


# Every parameter core_base reads (what a table of measured / base depends on)
BASE_PARAMS = ("peak_flops_per_s", "compute_efficiency", "gemm_min_rows", "attention_efficiency", "hbm_bw_bytes_per_s",
               "hbm_read_bw_bytes_per_s", "hbm_efficiency", "l2_bw_bytes_per_s", "gemm_latency_s",
               "gemm_bw_efficiency", "attention_latency_s", "attention_bw_efficiency")


def core_base(op: Op, shape: TokenShape, params: SimParams, weight_hit_fraction: float = 0.0) -> tuple[_Parts, float]:
    """A GEMM's or attention kernel's base time by cause (launch and the cache copies aside) and its
    size along its measured curve (:mod:`sim.costs.measured`: GEMM rows, decode KV bytes, prefill FLOPs)."""
    flops = op_flops(op, shape)
    activations = op_activation_bytes(op, shape)
    if op.kind == "gemm":
        weights = op_weight_bytes(op)
        return _gemm(op, shape, params, weights, weight_hit_fraction * weights, activations, flops)
    return _attention(op, shape, params, activations, op_kv_read_bytes(op, shape), flops)


def _kv_append_s(op: Op, shape: TokenShape, params: SimParams) -> float:
    """The executor's two cache copies (K, then V) after the attention's own kernel."""
    written = op_kv_write_bytes(op, shape)
    return 2 * params.kv_write_latency_s + hbm_time_s(0.0, written, params) if written else 0.0


def op_cost(op: Op, shape: TokenShape, cost: CostModel, weight_hit_fraction: float,
            memo: PriceMemo | None = None) -> OpCost:
    """Time and traffic of one compute operator (not a collective) at ``shape``."""
    params = cost.params
    flops = op_flops(op, shape)
    weights = op_weight_bytes(op)
    activations = op_activation_bytes(op, shape)
    kv_read, kv_write = op_kv_read_bytes(op, shape), op_kv_write_bytes(op, shape)
    l2_weight_bytes = weight_hit_fraction * weights
    correction = NO_EVIDENCE
    kv_append_s = 0.0
    if op.kind in ("gemm", "attention"):
        base, size = core_base(op, shape, params, weight_hit_fraction)
        correction = _correction(op, shape, cost, size, memo)
        kv_append_s = _kv_append_s(op, shape, params)
    else:
        base = _elementwise(op, params, weights, l2_weight_bytes, activations)
    parts = base.scaled(correction.ratio * prefill_time_scale(op.kind, shape, params))
    kernels = op_kernels(op)
    launch_s = cost.launch_overhead_s * kernels
    return OpCost(
        name=op.name,
        kind=op.kind,
        time_s=parts.total_s + kv_append_s + launch_s,
        flops=flops,
        weight_bytes=weights,
        activation_bytes=activations,
        kv_bytes=kv_read + kv_write,
        l2_bytes=l2_weight_bytes,
        hbm_bytes=weights - l2_weight_bytes + activations + kv_read + kv_write,
        compute_s=parts.compute_s,
        weights_s=parts.weights_s,
        kv_s=parts.kv_s + kv_append_s,
        activations_s=parts.activations_s,
        launch_s=launch_s,
        kernels=kernels,
        evidence=correction.weight,
    )


def overlap_eager_launches(ops: Sequence[OpCost], host_launch_s: float) -> tuple[OpCost, ...]:
    """Eager mode: the host issues kernels one after another, ``host_launch_s`` apart (the first
    ``host_launch_s`` after the segment starts), and the GPU runs an operator's kernels once its
    last is issued and the previous operator is done.

    (One kernel per operator: kernel ``i`` starts at ``max(end of kernel i-1, (i + 1) * host_launch_s)``.)
    Returns the ops with ``launch_s`` replaced by the GPU's wait for the host before each operator
    (the exposed launch cost) and ``time_s`` = kernel time + that wait, so the ops still add up to
    the segment's duration: large kernels hide the host entirely, small ones run at the host's
    issue rate.
    """
    result = []
    gpu_end_s = 0.0
    issued = 0
    for op in ops:
        kernel_s = op.time_s - op.launch_s
        first_s = (issued + 1) * host_launch_s  # its first kernel issued
        issued += op.kernels
        end_s = max(max(gpu_end_s, first_s) + kernel_s, issued * host_launch_s)  # not before its last is issued
        wait_s = end_s - gpu_end_s - kernel_s
        gpu_end_s = end_s
        result.append(replace(op, time_s=kernel_s + wait_s, launch_s=wait_s))
    return tuple(result)
