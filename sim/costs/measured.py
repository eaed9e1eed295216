"""Measured kernel shapes as tables of measured / roofline time, and the ratio near a shape (pure).

A profile's ``gemm_points`` and ``attention_points`` are kernels timed on the GPU. Each becomes a
row of a :class:`MeasuredTable`: the log of each dimension and its measured-to-roofline ratio
(:mod:`sim.costs.roofline`). The ratio near a query shape is the inverse log-distance weighted
ratio of the two nearest rows (the nearest alone when one equals the query).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sim.costs.roofline import attention_roofline_s, gemm_roofline_s
from sim.params import SimParams
from topology.profile import AttentionPoint, GemmPoint


@dataclass(frozen=True)
class MeasuredTable:
    """Measured shapes as arrays: the log of each dimension (one row per shape) and measured / roofline."""

    log_dims: np.ndarray = field(compare=False)
    ratios: np.ndarray = field(compare=False)

    @staticmethod
    def of(points: Sequence[tuple[Sequence[int], float]]) -> MeasuredTable:
        return MeasuredTable(np.array([log_dims(dims) for dims, _ in points], dtype=float),
                             np.array([ratio for _, ratio in points], dtype=float))


def log_dims(dims: Sequence[int]) -> tuple[float, ...]:
    return tuple(math.log(max(d, 1)) for d in dims)


def nearest_ratio(log_query: tuple[float, ...], table: MeasuredTable) -> float | None:
    if not len(table.ratios):
        return None
    distances = np.sqrt(((table.log_dims - np.array(log_query)) ** 2).sum(axis=1))
    order = np.lexsort((table.ratios, distances))  # nearest first; equal distances: smaller ratio first
    first = order[0]
    if distances[first] == 0.0:
        exact = np.flatnonzero(distances == 0.0)[0]  # the first measured shape equal to the query
        return float(table.ratios[exact])
    nearest = [(float(distances[i]), float(table.ratios[i])) for i in order[:2]]
    weights = [1.0 / d for d, _ in nearest]
    return sum(w * r for w, (_, r) in zip(weights, nearest, strict=True)) / sum(weights)


def measured_ratio(query: Sequence[int], points: Sequence[tuple[Sequence[int], float]]) -> float | None:
    """The ratio near ``query`` among ``points`` ((dims, ratio) pairs)."""
    return nearest_ratio(log_dims(query), MeasuredTable.of(points)) if points else None


def gemm_table(points: Sequence[GemmPoint], dtype_bytes: int, params: SimParams) -> MeasuredTable:
    """GEMM rows (m, n, k): measured time over the roofline at ``dtype_bytes``."""
    return MeasuredTable.of([((p.m, p.n, p.k), p.time_s / gemm_roofline_s(p.m, p.n, p.k, dtype_bytes, params))
                             for p in points])


def attention_table(points: Sequence[AttentionPoint], dtype_bytes: int, params: SimParams) -> MeasuredTable:
    """Attention rows (batch, heads, kv_heads, head_dim, new_tokens, context_len)."""
    return MeasuredTable.of([
        ((a.batch, a.heads, a.kv_heads, a.head_dim, a.new_tokens, a.context_len),
         a.time_s / attention_roofline_s(a.batch, a.heads, a.kv_heads, a.head_dim, a.new_tokens, a.context_len,
                                         dtype_bytes, params))
        for a in points])
