"""Fits for ``layerwise calibrate``: raw measurements in, named hardware parameters out.

Pure numpy/scipy (plus the profile dataclasses): this runs on GPU machines that have no simpy.

* latency + factor * bytes / bandwidth, fitted on relative error with a robust loss, both
  parameters positive (collectives: factor 2(n-1)/n for a ring all-reduce, 1 for send/recv);
* HBM copy and read rates: the fastest method at the largest buffer (no fit);
* usable L2: the largest weight size whose hot (L2-resident) GEMM is still clearly faster than
  the cold one, and the effective bandwidth of hot weights;
* launch overhead: the slope of burst time against kernels per burst;
* GEMM efficiency: achieved FLOP/s against a peak, and weight bytes streamed per second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import least_squares

from topology.profile import CollectiveFit, GemmPoint

L2_HOT_SPEEDUP_THRESHOLD = 1.15  # hot must beat cold by this factor to count as "fits in L2"
_MIN_LATENCY_S = 1e-12


@dataclass(frozen=True)
class LatencyBandwidthFit:
    latency_s: float
    bw_bytes_per_s: float
    max_rel_error: float  # worst |model / measured - 1| over the fitted points
    points: int


def collective_factor(op: str, group_size: int) -> float:
    """Bytes on the busiest link per payload byte: ring all-reduce 2(n-1)/n, send/recv 1."""
    if op == "allreduce":
        return 2.0 * (group_size - 1) / group_size
    if op == "sendrecv":
        return 1.0
    raise ValueError(f"unknown collective op {op!r} (known: allreduce, sendrecv)")


def fit_latency_bandwidth(nbytes: ArrayLike, times_s: ArrayLike, factor: float = 1.0
                          ) -> LatencyBandwidthFit:
    """Fit ``time_s = latency_s + factor * nbytes / bw_bytes_per_s`` (robust, relative error)."""
    size = np.asarray(nbytes, dtype=float)
    measured = np.asarray(times_s, dtype=float)
    if size.shape != measured.shape or size.size < 2:
        raise ValueError(f"need >= 2 (bytes, time) pairs of equal length, got {size.size} and {measured.size}")
    if np.any(measured <= 0) or np.any(size <= 0) or factor <= 0:
        raise ValueError("bytes, times and factor must be positive")
    moved = factor * size

    def model(log_params: np.ndarray) -> np.ndarray:
        return np.exp(log_params[0]) + moved / np.exp(log_params[1])

    def residuals(log_params: np.ndarray) -> np.ndarray:
        return model(log_params) / measured - 1.0

    latency0 = max(float(measured.min()) * 0.5, _MIN_LATENCY_S * 10)
    bw0 = float(np.max(moved / measured))
    x0 = np.log([latency0, bw0])
    lower = np.array([np.log(_MIN_LATENCY_S), np.log(bw0) - 10.0])
    upper = np.array([np.log(float(measured.max()) * 10), np.log(bw0) + 10.0])
    fit = least_squares(residuals, x0, bounds=(lower, upper), loss="soft_l1", f_scale=0.05)
    latency_s, bw = float(np.exp(fit.x[0])), float(np.exp(fit.x[1]))
    return LatencyBandwidthFit(latency_s=latency_s, bw_bytes_per_s=bw,
                               max_rel_error=float(np.max(np.abs(residuals(fit.x)))), points=int(size.size))


def fit_collectives(samples: Sequence[dict[str, Any]]) -> tuple[tuple[CollectiveFit, ...], dict[str, Any]]:
    """One fit per (op, group size) from ``{"op", "group_size", "nbytes", "time_s"}`` samples."""
    groups: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for sample in samples:
        key = (str(sample["op"]), int(sample["group_size"]))
        groups.setdefault(key, []).append((float(sample["nbytes"]), float(sample["time_s"])))
    fits = []
    diagnostics: dict[str, Any] = {}
    for (op, group_size), pairs in sorted(groups.items()):
        nbytes, times_s = zip(*pairs, strict=True)
        fit = fit_latency_bandwidth(nbytes, times_s, collective_factor(op, group_size))
        fits.append(CollectiveFit(op=op, group_size=group_size, latency_s=fit.latency_s,
                                  bw_bytes_per_s=fit.bw_bytes_per_s))
        diagnostics[f"{op}/{group_size}"] = {"max_rel_error": fit.max_rel_error, "points": fit.points}
    return tuple(fits), diagnostics


@dataclass(frozen=True)
class StreamingBandwidth:
    """The HBM rate a profile records for one kind of stream (``copy`` or ``read``)."""

    bw_bytes_per_s: float
    method: str  # the measurement method that gave it
    buffer_bytes: int  # the buffer size it was measured at
    by_method: dict[str, float]  # every method's rate at its largest buffer


def streaming_bandwidth(points: Sequence[dict[str, Any]], kind: str) -> StreamingBandwidth | None:
    """The fastest method's rate (moved bytes / median time) at its largest buffer.

    The largest buffer is where fixed costs matter least and what a long decode stream sees;
    the rate is taken as measured, not from a latency + bandwidth fit (a fit over sizes whose
    times hardly grow with size gives an unbounded slope: 904 TB/s from copies that ran at
    0.04 TB/s). Methods differ in how the bytes are issued (a graph-captured ``cudaMemcpy``,
    the same eager, an SM kernel); the fastest is what the memory can do. Points without a
    ``method`` (the first profiles) are graph-captured memcpy copies.
    """
    largest: dict[str, dict[str, Any]] = {}
    for point in points:
        if point.get("kind", "copy") != kind:
            continue
        method = str(point.get("method", "copy:memcpy-graph"))
        if method not in largest or point["buffer_bytes"] > largest[method]["buffer_bytes"]:
            largest[method] = point
    if not largest:
        return None
    rates = {m: float(p["moved_bytes"]) / float(p["time_s"]) for m, p in largest.items()}
    best = max(rates, key=lambda m: rates[m])
    return StreamingBandwidth(bw_bytes_per_s=rates[best], method=best,
                              buffer_bytes=int(largest[best]["buffer_bytes"]), by_method=rates)


def usable_l2_bytes(weight_bytes: Sequence[int], hot_s: Sequence[float], cold_s: Sequence[float],
                    threshold: float = L2_HOT_SPEEDUP_THRESHOLD) -> int | None:
    """Largest weight size of the first run of sizes (smallest up) where cold / hot > ``threshold``.

    Leading sizes where hot is not clearly faster are skipped (tiny GEMMs are bound by their
    fixed cost, not by where the weight lives); the run ends at the first size past them where
    hot is no longer clearly faster, so one noisy point beyond the knee cannot inflate the
    answer. ``None`` when no size is clearly faster hot.
    """
    order = np.argsort(np.asarray(weight_bytes))
    usable: int | None = None
    for i in order:
        if cold_s[i] / hot_s[i] > threshold:
            usable = int(weight_bytes[i])
        elif usable is not None:
            break
    return usable


def hot_l2_bw_bytes_per_s(weight_bytes: Sequence[int], hot_s: Sequence[float], usable_bytes: int | None
                          ) -> float | None:
    """Best effective read bandwidth of a weight that stays in L2 (sizes up to ``usable_bytes``)."""
    if usable_bytes is None:
        return None
    rates = [b / t for b, t in zip(weight_bytes, hot_s, strict=True) if b <= usable_bytes]
    return float(max(rates)) if rates else None


def per_kernel_s(kernels: Sequence[int], times_s: Sequence[float]) -> float:
    """Cost per kernel: the least-squares slope of burst time against kernels (>= 0)."""
    counts = np.asarray(kernels, dtype=float)
    measured = np.asarray(times_s, dtype=float)
    if counts.size == 1:
        return float(measured[0] / counts[0])
    slope = float(np.polyfit(counts, measured, 1)[0])
    return max(slope, 0.0)


def gemm_flops(point: GemmPoint) -> float:
    return 2.0 * point.m * point.n * point.k


def best_gemm_flops_per_s(points: Sequence[GemmPoint]) -> float | None:
    return max((gemm_flops(p) / p.time_s for p in points), default=None)


@dataclass(frozen=True)
class GemmEfficiency:
    m: int
    n: int
    k: int
    flops_per_s: float
    flops_fraction: float  # of the peak FLOP/s given
    weight_bw_bytes_per_s: float  # weight bytes / time: the decode-relevant rate


def gemm_efficiency(points: Sequence[GemmPoint], peak_flops_per_s: float, dtype_bytes: int = 2
                    ) -> list[GemmEfficiency]:
    out = []
    for p in sorted(points, key=lambda q: (q.n, q.k, q.m)):
        rate = gemm_flops(p) / p.time_s
        out.append(GemmEfficiency(m=p.m, n=p.n, k=p.k, flops_per_s=rate, flops_fraction=rate / peak_flops_per_s,
                                  weight_bw_bytes_per_s=p.n * p.k * dtype_bytes / p.time_s))
    return out


def gemm_summary(points: Sequence[GemmPoint], peak_flops_per_s: float, hbm_bw_bytes_per_s: float | None,
                 dtype_bytes: int = 2) -> dict[str, Any]:
    """Per M: median FLOP fraction of peak and median weight-streaming rate (fraction of HBM)."""
    summary: dict[str, Any] = {"peak_flops_per_s": peak_flops_per_s, "by_m": {}}
    table = gemm_efficiency(points, peak_flops_per_s, dtype_bytes)
    for m in sorted({e.m for e in table}):
        rows = [e for e in table if e.m == m]
        entry = {"median_flops_fraction": float(np.median([e.flops_fraction for e in rows])),
                 "median_weight_bw_bytes_per_s": float(np.median([e.weight_bw_bytes_per_s for e in rows]))}
        if hbm_bw_bytes_per_s:
            entry["median_weight_bw_fraction_of_hbm"] = entry["median_weight_bw_bytes_per_s"] / hbm_bw_bytes_per_s
        summary["by_m"][str(m)] = entry
    return summary
