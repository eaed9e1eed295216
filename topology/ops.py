"""Operators of a transformer layer and their costs, per device, as pure functions.

Conventions (``T = batch * new_tokens`` tokens in one call; ``d`` = dtype bytes; widths
are per device, i.e. already divided by the tensor-parallel degree where TP splits them):

===========  ==============================  ====================================  ==========================
kind         FLOPs                           activation bytes (read + written)     weight / KV bytes
===========  ==============================  ====================================  ==========================
gemm         2 * T * in * out                T * (in + out) * d                    in * out * d
attention    4 * batch * heads * hd * pairs  2 * T * heads * hd * d (Q in, O out)  KV read: B * ctx * 2 * kv * hd * d
                                                                                    KV written: T * 2 * kv * hd * d
norm         4 * T * width                   2 * T * width * d                     width * d
activation   gated 5 * T * width,            gated 3 * T * width * d,              0
             plain 8 * T * width             plain 2 * T * width * d
residual     (n - 1) * T * width             (n + 1) * T * width * d               0
allreduce    0 (reductions not counted)      payload T * width * d on the links    0
===========  ==============================  ====================================  ==========================

Kernels: the executor launches one kernel per operator, except the gated activation (SiLU, then the
product with the gate: two), a residual of ``n`` terms (``n - 1`` adds) and attention, which the
executor follows with two copies appending the new tokens' K and V to the cache
(:func:`op_kernels`; the two copies are priced apart, :mod:`sim.costs.kernels`). A GEMM that cuBLAS
splits over K adds a reduction kernel, which its measured time already holds.

``pairs`` is the number of (query, key) pairs causal attention scores: the new tokens are
the last ``new_tokens`` of a ``context_len``-token context, so query ``i`` (1-based) sees
``context_len - new_tokens + i`` keys: ``pairs = new*(ctx-new) + new*(new+1)/2``. Decode
(new = 1): ``pairs = ctx``. Prefill (new = ctx = S): ``S(S+1)/2``, the causal half of S^2.
QK^T and PV each cost 2 FLOPs per pair per head dimension, hence the 4. A residual adds ``n``
tensors (``terms``: 2, or 3 where a parallel block adds the attention and MLP outputs to its input
at once). The norm and activation FLOP counts are per-element estimates (square, sum, scale, weight = 4; SiLU
plus the gate multiply = 5; tanh-GELU = 8); they are small beside the GEMMs.
"""

from __future__ import annotations

from dataclasses import dataclass

from topology.workload import TokenShape

OP_KINDS = ("norm", "gemm", "attention", "activation", "residual", "allreduce")


@dataclass(frozen=True)
class Op:
    """One operator on one device of a TP group (dimensions already per device)."""

    name: str  # e.g. "L3.qkv"
    layer: int
    kind: str
    dtype_bytes: int
    in_features: int = 0  # gemm
    out_features: int = 0  # gemm
    width: int = 0  # norm, activation, residual, allreduce
    heads: int = 0  # attention: query heads on this device
    kv_heads: int = 0  # attention: KV heads on this device
    head_dim: int = 0
    gated: bool = False  # activation
    tp_degree: int = 1  # allreduce group size
    terms: int = 2  # residual: tensors added


def op_kernels(op: Op) -> int:
    """Kernels the executor launches for the operator (attention's two cache copies included)."""
    if op.kind == "activation":
        return 2 if op.gated else 1
    if op.kind == "residual":
        return op.terms - 1
    if op.kind == "attention":
        return 3
    return 0 if op.kind == "allreduce" else 1


def attention_pairs(shape: TokenShape) -> int:
    new, ctx = shape.new_tokens, shape.context_len
    return new * (ctx - new) + new * (new + 1) // 2


def op_flops(op: Op, shape: TokenShape) -> float:
    tokens = shape.tokens
    if op.kind == "gemm":
        return 2.0 * tokens * op.in_features * op.out_features
    if op.kind == "attention":
        return 4.0 * shape.batch * op.heads * op.head_dim * attention_pairs(shape)
    if op.kind == "norm":
        return 4.0 * tokens * op.width
    if op.kind == "activation":
        return (5.0 if op.gated else 8.0) * tokens * op.width
    if op.kind == "residual":
        return float((op.terms - 1) * tokens * op.width)
    return 0.0


def op_weight_bytes(op: Op) -> int:
    if op.kind == "gemm":
        return op.in_features * op.out_features * op.dtype_bytes
    if op.kind == "norm":
        return op.width * op.dtype_bytes
    return 0


def op_activation_bytes(op: Op, shape: TokenShape) -> int:
    """Activation bytes the operator reads and writes in HBM (weights and KV excluded)."""
    tokens, d = shape.tokens, op.dtype_bytes
    if op.kind == "gemm":
        return tokens * (op.in_features + op.out_features) * d
    if op.kind == "attention":
        return 2 * tokens * op.heads * op.head_dim * d
    if op.kind == "norm":
        return 2 * tokens * op.width * d
    if op.kind == "activation":
        return (3 if op.gated else 2) * tokens * op.width * d
    if op.kind == "residual":
        return (op.terms + 1) * tokens * op.width * d
    return 0


def op_kv_read_bytes(op: Op, shape: TokenShape) -> int:
    """KV-cache bytes attention reads: K and V of every context token."""
    if op.kind != "attention":
        return 0
    return shape.batch * shape.context_len * 2 * op.kv_heads * op.head_dim * op.dtype_bytes


def op_kv_write_bytes(op: Op, shape: TokenShape) -> int:
    """KV-cache bytes attention appends: K and V of the new tokens."""
    if op.kind != "attention":
        return 0
    return shape.tokens * 2 * op.kv_heads * op.head_dim * op.dtype_bytes


def op_kv_footprint_bytes(op: Op, batch: int, capacity_tokens: int) -> int:
    """HBM the KV cache of this attention op holds for ``batch`` sequences."""
    if op.kind != "attention":
        return 0
    return batch * capacity_tokens * 2 * op.kv_heads * op.head_dim * op.dtype_bytes


def op_comm_bytes(op: Op, shape: TokenShape) -> int:
    """Payload of a collective (each rank's buffer), 0 for compute ops."""
    if op.kind != "allreduce":
        return 0
    return shape.tokens * op.width * op.dtype_bytes


def op_hbm_bytes(op: Op, shape: TokenShape) -> int:
    """All bytes the op moves through device memory when nothing is cached."""
    return (
        op_weight_bytes(op)
        + op_activation_bytes(op, shape)
        + op_kv_read_bytes(op, shape)
        + op_kv_write_bytes(op, shape)
    )
