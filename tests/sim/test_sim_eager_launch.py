"""Eager launches overlap with the GPU: hand-worked host/GPU timelines."""

from __future__ import annotations

import pytest

from sim.costs.kernels import OpCost, overlap_eager_launches


def _op(name: str, kernel_s: float, launch_s: float) -> OpCost:
    return OpCost(name=name, kind="gemm", time_s=kernel_s + launch_s, flops=0.0, weight_bytes=0,
                  activation_bytes=0, kv_bytes=0, l2_bytes=0.0, hbm_bytes=0.0, compute_s=0.0,
                  weights_s=kernel_s, kv_s=0.0, activations_s=0.0, launch_s=launch_s)


def test_large_kernel_hides_the_host() -> None:
    # host issues at 3, 6, 9, 12 us; GPU: k0 3..13, k1 13..14, k2 14..15, k3 15..16
    ops = [_op("a", 10e-6, 3e-6), _op("b", 1e-6, 3e-6), _op("c", 1e-6, 3e-6), _op("d", 1e-6, 3e-6)]
    out = overlap_eager_launches(ops, 3e-6)
    assert [o.launch_s for o in out] == pytest.approx([3e-6, 0.0, 0.0, 0.0])
    assert sum(o.time_s for o in out) == pytest.approx(16e-6)


def test_small_kernels_run_at_the_host_rate() -> None:
    # host issues at 3, 6, 9 us; each 1 us kernel waits: GPU ends at 4, 7, 10
    ops = [_op(name, 1e-6, 3e-6) for name in "abc"]
    out = overlap_eager_launches(ops, 3e-6)
    assert [o.launch_s for o in out] == pytest.approx([3e-6, 2e-6, 2e-6])
    assert sum(o.time_s for o in out) == pytest.approx(10e-6)


def test_overlap_is_never_faster_than_either_side() -> None:
    kernels = [4e-6, 0.5e-6, 7e-6, 0.1e-6, 0.1e-6, 2e-6]
    launch = 1.5e-6
    ops = [_op(str(i), k, launch) for i, k in enumerate(kernels)]
    total = sum(o.time_s for o in overlap_eager_launches(ops, launch))
    assert total >= sum(kernels)
    assert total >= len(kernels) * launch + kernels[-1] - 1e-15
    assert total <= sum(kernels) + len(kernels) * launch
