"""Measured kernels as corrections to a base model (pure): how a profile's timed GEMMs and attention
calls price operators of any shape, and how far that evidence reaches.

A kernel's time is its **base** time (:mod:`sim.costs.kernels`: a fixed latency plus bytes at an
achieved bandwidth, or FLOPs at an achieved rate) times a **correction**, the measured / base ratio
near the operator's shape. The profile's points are grouped by *shape* (what the kernel is: a GEMM's
``(n, k)``; attention's group size, KV heads and head_dim) into :class:`ShapeCurve` s along one *size*
(how much it does: a GEMM's rows ``m``; attention's KV bytes in decode, its FLOPs in prefill). For a
query:

* a measured shape: its curve's log ratio, linear in log size between measured sizes, the end value
  beyond them: the measurement itself;
* an unmeasured shape: a kernel regression over shapes, each curve weighted by
  ``exp(-d^2 / (2 SHAPE_SCALE^2))`` (``d`` the distance of the log shape features), shrunk toward the
  base model (log ratio 0) by a prior weight ``PRIOR_WEIGHT``: shapes near measured ones borrow their
  correction, shapes far from all of them get the base model;

and :class:`Correction` says how much evidence backed it (``weight``: the largest curve weight; 1 on
a measured shape, 0 far from all), which the accuracy bands read ("outside measured shapes").

:func:`fit_affine` gives the base model's latency and bandwidth from the same points (weighted least
squares on relative error), so measurements fix both the base and its corrections.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

SHAPE_SCALE = 0.35  # log units: a shape 1.4x away in one feature keeps 2/3 of a curve's weight
PRIOR_WEIGHT = 0.1  # the base model's weight: what an unmeasured shape far from every curve falls back to
NEAR_WEIGHT = 0.3  # a correction backed by at least this curve weight counts as inside the measured shapes


@dataclass(frozen=True)
class ShapeCurve:
    """One measured shape: log sizes (ascending) and the log of measured / base at each."""

    shape: tuple[float, ...]  # log shape features
    log_sizes: np.ndarray = field(compare=False)
    log_ratios: np.ndarray = field(compare=False)

    def at(self, log_size: float) -> float:
        return float(np.interp(log_size, self.log_sizes, self.log_ratios))


@dataclass(frozen=True)
class Correction:
    ratio: float  # measured / base near the query
    weight: float  # the evidence behind it: 1 on a measured shape, toward 0 far from all


NO_EVIDENCE = Correction(1.0, 0.0)


@dataclass(frozen=True)
class KernelTable:
    """The measured curves of one kernel kind (see the module docstring)."""

    curves: tuple[ShapeCurve, ...] = ()

    def correction(self, shape: tuple[float, ...], log_size: float) -> Correction:
        if not self.curves:
            return NO_EVIDENCE
        weights, values = [], []
        for curve in self.curves:
            distance_sq = sum((a - b) ** 2 for a, b in zip(curve.shape, shape, strict=True))
            if distance_sq == 0.0:
                return Correction(math.exp(curve.at(log_size)), 1.0)
            weights.append(math.exp(-distance_sq / (2 * SHAPE_SCALE ** 2)))
            values.append(curve.at(log_size))
        total = sum(weights)
        log_ratio = sum(w * v for w, v in zip(weights, values, strict=True)) / (total + PRIOR_WEIGHT)
        return Correction(math.exp(log_ratio), max(weights))


NO_TABLE = KernelTable()  # no measured kernels of a kind: the base model alone
Point = tuple[tuple[float, ...], float, float]  # (log shape features, log size, measured time)


def build_table(points: Sequence[Point], base: Callable[[int], float]) -> KernelTable:
    """Curves of measured / base, one per distinct shape; ``base(i)`` is point ``i``'s base time."""
    by_shape: dict[tuple[float, ...], list[tuple[float, float]]] = {}
    for index, (shape, log_size, time_s) in enumerate(points):
        by_shape.setdefault(shape, []).append((log_size, math.log(time_s / base(index))))
    curves = []
    for shape, pairs in by_shape.items():
        merged: dict[float, list[float]] = {}
        for log_size, log_ratio in pairs:
            merged.setdefault(log_size, []).append(log_ratio)
        sizes = sorted(merged)
        curves.append(ShapeCurve(shape, np.array(sizes), np.array([statistics.median(merged[s]) for s in sizes])))
    return KernelTable(tuple(curves))


def fit_affine(bytes_moved: Sequence[float], times_s: Sequence[float]) -> tuple[float, float] | None:
    """``time = latency + bytes / bandwidth`` minimising the relative error (weighted linear least
    squares); ``(latency_s, bandwidth_bytes_per_s)``, or None for too few points or a fit without
    physical meaning (a negative latency or bandwidth)."""
    if len(times_s) < 3:
        return None
    design = np.array([[1.0 / t, b / t] for b, t in zip(bytes_moved, times_s, strict=True)])
    (latency_s, inverse_bw), *_ = np.linalg.lstsq(design, np.ones(len(times_s)), rcond=None)
    if latency_s < 0 or inverse_bw <= 0:
        return None
    return float(latency_s), float(1.0 / inverse_bw)


def log_features(*values: float) -> tuple[float, ...]:
    return tuple(math.log(max(v, 1)) for v in values)


def gemm_features(n: int, k: int) -> tuple[float, ...]:
    """A GEMM's shape: output and input widths (log)."""
    return log_features(n, k)


def attention_features(heads: int, kv_heads: int, head_dim: int) -> tuple[float, ...]:
    """An attention kernel's shape: head_dim (log), and query heads per KV head at half weight.

    head_dim sets the kernel's tiles; the group size matters less (below the compute-bound regime of
    large groups, measured times per KV byte barely move with it); the number of KV heads only sets how
    many blocks run in parallel, with the batch, and is left to the size axis. Chosen by leaving one
    shape family out at a time on the 1 x H200 shape study among four feature sets (with KV heads:
    decode MAPE 4.6%; head_dim and group size at full weight: 4.5%; this: 4.4%, worst head_dim-256
    shape -9% against -13%)."""
    return (0.5 * math.log(max(heads // max(kv_heads, 1), 1)), math.log(max(head_dim, 1)))
