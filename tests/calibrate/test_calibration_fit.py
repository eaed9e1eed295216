"""Fits recover known parameters from synthetic measurements with noise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.calibrate.fit import (
    collective_factor,
    fit_collectives,
    fit_latency_bandwidth,
    gemm_summary,
    hot_l2_bw_bytes_per_s,
    per_kernel_s,
    streaming_bandwidth,
    usable_l2_bytes,
)
from topology.profile import GemmPoint

MiB = 2**20
SIZES_BYTES = [1024 * 4**i for i in range(11)]  # 1 KiB .. 1 GiB


def _noisy(values: np.ndarray, rng: np.random.Generator, rel: float) -> np.ndarray:
    return values * (1.0 + rng.normal(0.0, rel, size=values.shape))


def test_collective_factor_ring_and_pair() -> None:
    assert collective_factor("allreduce", 2) == 1.0
    assert collective_factor("allreduce", 4) == 1.5
    assert collective_factor("allreduce", 8) == 1.75
    assert collective_factor("sendrecv", 8) == 1.0
    with pytest.raises(ValueError):
        collective_factor("broadcast", 2)


@settings(max_examples=25, deadline=None)
@given(latency_s=st.floats(2e-6, 100e-6), bw_bytes_per_s=st.floats(1e10, 1e12),
       group_size=st.integers(2, 8), seed=st.integers(0, 2**16))
def test_allreduce_fit_recovers_latency_and_bandwidth(latency_s: float, bw_bytes_per_s: float, group_size: int,
                                                      seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = np.array(SIZES_BYTES, dtype=float)
    factor = collective_factor("allreduce", group_size)
    times = _noisy(latency_s + factor * sizes / bw_bytes_per_s, rng, 0.03)
    fit = fit_latency_bandwidth(sizes, times, factor)
    assert fit.latency_s == pytest.approx(latency_s, rel=0.15)
    assert fit.bw_bytes_per_s == pytest.approx(bw_bytes_per_s, rel=0.08)


def test_fit_is_robust_to_one_outlier() -> None:
    rng = np.random.default_rng(3)
    sizes = np.array(SIZES_BYTES, dtype=float)
    times = _noisy(20e-6 + sizes / 300e9, rng, 0.02)
    times[5] *= 4.0  # one straggler
    fit = fit_latency_bandwidth(sizes, times, 1.0)
    assert fit.latency_s == pytest.approx(20e-6, rel=0.15)
    assert fit.bw_bytes_per_s == pytest.approx(300e9, rel=0.08)
    assert fit.max_rel_error > 0.5  # the outlier shows in the diagnostics


def test_fit_collectives_groups_by_op_and_size() -> None:
    rng = np.random.default_rng(0)
    truth = {("allreduce", 2): (15e-6, 150e9), ("allreduce", 4): (25e-6, 120e9), ("sendrecv", 2): (10e-6, 180e9)}
    samples = []
    for (op, group_size), (latency_s, bw) in truth.items():
        for nbytes in SIZES_BYTES:
            ideal_s = latency_s + collective_factor(op, group_size) * nbytes / bw
            samples.append({"op": op, "group_size": group_size, "nbytes": nbytes,
                            "time_s": float(_noisy(np.array(ideal_s), rng, 0.02))})
    fits, diagnostics = fit_collectives(samples)
    assert [(f.op, f.group_size) for f in fits] == sorted(truth)
    for fit in fits:
        latency_s, bw = truth[(fit.op, fit.group_size)]
        assert fit.latency_s == pytest.approx(latency_s, rel=0.15)
        assert fit.bw_bytes_per_s == pytest.approx(bw, rel=0.08)
    assert set(diagnostics) == {"allreduce/2", "allreduce/4", "sendrecv/2"}


def _stream_point(method: str, buffer_bytes: int, time_s: float) -> dict[str, object]:
    kind = method.split(":")[0]
    moved = 2 * buffer_bytes if kind == "copy" else buffer_bytes
    return {"method": method, "kind": kind, "buffer_bytes": buffer_bytes, "moved_bytes": moved, "time_s": time_s}


def test_streaming_bandwidth_is_the_fastest_method_at_its_largest_buffer() -> None:
    points = [_stream_point("copy:memcpy-graph", 256 * MiB, 2 * 256 * MiB / 2.98e12),
              _stream_point("copy:memcpy-graph", 2048 * MiB, 2 * 2048 * MiB / 2.44e12),
              _stream_point("copy:kernel", 2048 * MiB, 2 * 2048 * MiB / 2.90e12),
              _stream_point("read:sum", 256 * MiB, 256 * MiB / 2.9e12),
              _stream_point("read:sum", 2048 * MiB, 2048 * MiB / 3.1e12)]
    copy = streaming_bandwidth(points, "copy")
    read = streaming_bandwidth(points, "read")
    assert copy is not None and read is not None
    # the graph memcpy peaks at 256 MiB but the profile takes each method at its largest buffer
    assert copy.bw_bytes_per_s == pytest.approx(2.90e12) and copy.method == "copy:kernel"
    assert copy.by_method == pytest.approx({"copy:memcpy-graph": 2.44e12, "copy:kernel": 2.90e12})
    assert read.bw_bytes_per_s == pytest.approx(3.1e12) and read.buffer_bytes == 2048 * MiB
    assert streaming_bandwidth(points[:3], "read") is None


def test_copy_rate_written_is_the_rate_measured_not_an_unbounded_fit() -> None:
    """Issue 13: a CPU run logged "hbm copy 1.00 MiB: 0.041 TB/s" and wrote 904 TB/s: two sizes that
    took the same time gave a latency + bandwidth fit whose slope ran to its bound (0.041 TB/s x e^10)."""
    time_s = 2 * MiB / 0.041e12
    points = [{"buffer_bytes": MiB // 4, "moved_bytes": MiB // 2, "time_s": time_s},  # a first profile's points:
              {"buffer_bytes": MiB, "moved_bytes": 2 * MiB, "time_s": time_s}]  # no method, graph memcpy copies
    copy = streaming_bandwidth(points, "copy")
    assert copy is not None and copy.bw_bytes_per_s == pytest.approx(0.041e12)


def _l2_curves(usable_bytes: int, sizes: list[int], rng: np.random.Generator) -> tuple[list[float], list[float]]:
    """Hot reads come from L2 (8 TB/s) while the weight fits, from HBM (3 TB/s) once it does not."""
    hot, cold = [], []
    for size in sizes:
        cold_s = 3e-6 + size / 3e12
        hot_s = 3e-6 + size / 8e12 if size <= usable_bytes else cold_s
        hot.append(float(_noisy(np.array(hot_s), rng, 0.02)))
        cold.append(float(_noisy(np.array(cold_s), rng, 0.02)))
    return hot, cold


@pytest.mark.parametrize("usable_mib", [12, 24, 32, 48])
def test_usable_l2_finds_the_knee(usable_mib: int) -> None:
    sizes = [s * MiB for s in (2, 4, 8, 12, 16, 24, 32, 40, 48, 64, 96, 128)]
    hot, cold = _l2_curves(usable_mib * MiB, sizes, np.random.default_rng(usable_mib))
    assert usable_l2_bytes(sizes, hot, cold) == usable_mib * MiB
    bw = hot_l2_bw_bytes_per_s(sizes, hot, usable_mib * MiB)
    assert bw is not None and bw < 8e12  # never above the L2 rate the curves were drawn from
    cold_rates = [size / t for size, t in zip(sizes, cold, strict=True) if size <= usable_mib * MiB]
    assert bw > 1.15 * max(cold_rates)  # clearly faster than the same sizes read cold


def test_usable_l2_stops_at_first_miss_and_handles_none() -> None:
    sizes = [2 * MiB, 4 * MiB, 8 * MiB, 16 * MiB, 32 * MiB]
    cold = [1.0] * 5
    assert usable_l2_bytes(sizes, [0.5, 0.5, 1.0, 0.5, 1.0], cold) == 4 * MiB  # a late "hit" is noise
    assert usable_l2_bytes(sizes, [1.0, 0.5, 0.5, 1.0, 1.0], cold) == 8 * MiB  # a leading miss is skipped
    assert usable_l2_bytes(sizes, [1.0] * 5, cold) is None
    assert hot_l2_bw_bytes_per_s(sizes, [1.0] * 4, None) is None


def test_per_kernel_cost_is_the_slope() -> None:
    counts = [100, 300, 1000, 3000]
    times = [50e-6 + n * 4.5e-6 for n in counts]  # a fixed sync cost plus 4.5 us per kernel
    assert per_kernel_s(counts, times) == pytest.approx(4.5e-6, rel=1e-6)
    assert per_kernel_s([1000], [2e-3]) == pytest.approx(2e-6)


def test_gemm_summary_fractions() -> None:
    points = [GemmPoint(m=1, n=4096, k=4096, time_s=4096 * 4096 * 2 / 2e12),  # streams at 2 TB/s
              GemmPoint(m=4096, n=4096, k=4096, time_s=2 * 4096**3 / 500e12)]  # 500 TFLOP/s
    summary = gemm_summary(points, peak_flops_per_s=1000e12, hbm_bw_bytes_per_s=4e12)
    assert summary["by_m"]["4096"]["median_flops_fraction"] == pytest.approx(0.5)
    assert summary["by_m"]["1"]["median_weight_bw_fraction_of_hbm"] == pytest.approx(0.5)
