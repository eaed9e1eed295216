"""Build the cost model of a cluster and a profile: parameters resolved (datasheet, then the profile's
measurements, then the base model fitted to its measured kernels, then its fitted ``sim_params``),
and the measured kernels as correction tables over that base (:mod:`sim.costs.measured`).

The profile's kernels were timed in CUDA-graph bursts (``layerwise calibrate``), so each point's time
includes one graph launch; the launch is taken off before a point meets the base model, which prices
launches apart (:func:`sim.costs.kernels.op_cost`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from sim.costs.kernels import BASE_PARAMS, core_base
from sim.costs.measured import KernelTable, Point, attention_features, build_table, fit_affine, gemm_features
from sim.costs.memo import built
from sim.costs.model import CostModel
from sim.params import SimParams, resolve_params
from topology.cluster import Cluster
from topology.ops import Op, op_activation_bytes, op_kv_read_bytes
from topology.profile import AttentionPoint, GemmPoint, HardwareProfile
from topology.workload import TokenShape

DECODE_GEMM_ROWS = 64  # GEMMs of at most this many rows stream their weights: the affine fit's points
BW_EFFICIENCY_RANGE = (0.2, 1.5)  # a fitted bandwidth outside this share of the read rate is not used


def _gemm_op(point: GemmPoint, dtype_bytes: int) -> tuple[Op, TokenShape]:
    op = Op("gemm", 0, "gemm", dtype_bytes, in_features=point.k, out_features=point.n)
    return op, TokenShape(batch=point.m, new_tokens=1, context_len=1)


def _attention_op(point: AttentionPoint, dtype_bytes: int) -> tuple[Op, TokenShape]:
    op = Op("attention", 0, "attention", dtype_bytes, heads=point.heads, kv_heads=point.kv_heads,
            head_dim=point.head_dim)
    return op, TokenShape(batch=point.batch, new_tokens=point.new_tokens, context_len=point.context_len)


def _measured_dtype_bytes(profile: HardwareProfile) -> int:
    raw: Any = profile.raw.get("gemm", {}) if isinstance(profile.raw, dict) else {}
    dtype = str(raw.get("dtype", "bfloat16")) if isinstance(raw, dict) else "bfloat16"
    return 4 if "float32" in dtype else 2


def _fit_base(params: SimParams, gemm_points: tuple[GemmPoint, ...], attention_points: tuple[AttentionPoint, ...],
              dtype_bytes: int, fixed: frozenset[str]) -> SimParams:
    """The base model's latencies and bandwidth shares from the decode points (each kind apart;
    worked out once per value of the points and the parameters the fit reads)."""
    key = ("base", params.launch_overhead_graph_s, params.hbm_effective_read_bw_bytes_per_s, gemm_points,
           attention_points, dtype_bytes, fixed)
    fitted = built(key, lambda: _fitted_base(params, gemm_points, attention_points, dtype_bytes, fixed))
    return replace(params, **fitted)


def _fitted_base(params: SimParams, gemm_points: tuple[GemmPoint, ...], attention_points: tuple[AttentionPoint, ...],
                 dtype_bytes: int, fixed: frozenset[str]) -> dict[str, float]:
    launch_s = params.launch_overhead_graph_s
    read_bw = params.hbm_effective_read_bw_bytes_per_s
    updates: dict[str, float] = {}
    gemms = [p for p in gemm_points if p.m <= DECODE_GEMM_ROWS and p.time_s > launch_s]
    decode = [p for p in attention_points if p.new_tokens == 1 and p.time_s > launch_s]
    for names, points, moved in (
        (("gemm_latency_s", "gemm_bw_efficiency"), gemms,
         lambda p: (p.n * p.k + p.m * (p.n + p.k)) * dtype_bytes),
        (("attention_latency_s", "attention_bw_efficiency"), decode,
         lambda p: op_kv_read_bytes(*_attention_op(p, dtype_bytes))
         + op_activation_bytes(*_attention_op(p, dtype_bytes))),
    ):
        fit = fit_affine([moved(p) for p in points], [p.time_s - launch_s for p in points])
        if fit is None:
            continue
        latency_s, bw = fit
        share = bw / read_bw
        if BW_EFFICIENCY_RANGE[0] <= share <= BW_EFFICIENCY_RANGE[1]:
            updates.update({n: v for n, v in zip(names, (latency_s, share), strict=True) if n not in fixed})
    return updates


def _tables(params: SimParams, gemm_points: tuple[GemmPoint, ...], attention_points: tuple[AttentionPoint, ...],
            dtype_bytes: int) -> tuple[KernelTable, ...]:
    """The correction tables, memoized by value: by the points and the parameters the base reads (a
    validation prices many runs under one profile, its fits moving other parameters)."""
    key = ("tables", tuple(getattr(params, name) for name in (*BASE_PARAMS, "launch_overhead_graph_s")),
           gemm_points, attention_points, dtype_bytes)
    return built(key, lambda: _build_tables(params, gemm_points, attention_points, dtype_bytes))


def _build_tables(params: SimParams, gemm_points: tuple[GemmPoint, ...], attention_points: tuple[AttentionPoint, ...],
                  dtype_bytes: int) -> tuple[KernelTable, ...]:
    launch_s = params.launch_overhead_graph_s
    gemm: list[Point] = []
    gemm_base: list[float] = []
    for p in gemm_points:
        if p.time_s > launch_s:
            op, shape = _gemm_op(p, dtype_bytes)
            base, size = core_base(op, shape, params)
            gemm.append((gemm_features(p.n, p.k), _log(size), p.time_s - launch_s))
            gemm_base.append(base.total_s)
    tables = [build_table(gemm, gemm_base.__getitem__)]
    for decode in (True, False):
        points: list[Point] = []
        bases: list[float] = []
        for a in attention_points:
            if (a.new_tokens == 1) == decode and a.time_s > launch_s:
                op, shape = _attention_op(a, dtype_bytes)
                base, size = core_base(op, shape, params)
                points.append((attention_features(a.heads, a.kv_heads, a.head_dim), _log(size), a.time_s - launch_s))
                bases.append(base.total_s)
        tables.append(build_table(points, bases.__getitem__))
    return tuple(tables)


def _log(value: float) -> float:
    return math.log(max(value, 1.0))


def build_cost_model(cluster: Cluster, profile: HardwareProfile | None, cuda_graphs: bool) -> CostModel:
    params = resolve_params(cluster, profile)
    if profile is None:
        return CostModel(params=params, cuda_graphs=cuda_graphs)
    dtype_bytes = _measured_dtype_bytes(profile)
    points = profile.params.gemm_points, profile.params.attention_points
    params = _fit_base(params, *points, dtype_bytes, frozenset(profile.params.sim_params))
    gemm, decode, prefill = _tables(params, *points, dtype_bytes)
    return CostModel(params=params, cuda_graphs=cuda_graphs, collectives=profile.params.collectives,
                     gemm_table=gemm, decode_attention_table=decode, prefill_attention_table=prefill,
                     measured_dtype_bytes=dtype_bytes)
