"""Kernel time by kind: simulated operators and profiled kernels put in the same three kinds."""

from __future__ import annotations

import pytest

from topology.model import load_model
from validate.kernel_kinds import ATTENTION, ELEMENTWISE, GEMM, kind_times, profiled_kind
from validate.timeline import Bar


def _bars(named: list[tuple[str, float]]) -> list[Bar]:
    return [Bar("row", name, "kernel", 0.0, duration_s) for name, duration_s in named]


def test_profiled_kernels_by_name() -> None:
    """Names as torch.profiler records them on an H100 (results/hardware/h100x1-v2 traces)."""
    assert profiled_kind("nvjet_sm90_tst_192x192_64x4_1x1_h_bz_coopB_TNN") == GEMM
    assert profiled_kind("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64") == GEMM
    assert profiled_kind("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x128") == ATTENTION
    assert profiled_kind("void pytorch_flash::flash_fwd_splitkv_kernel<Flash_fwd_kernel_traits<128>>") == ATTENTION
    assert profiled_kind("void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::"
                         "native::(anonymous namespace)::silu_kernel") == ELEMENTWISE
    assert profiled_kind("Memset (Device)") == ELEMENTWISE


def test_shares_times_step_hand_worked() -> None:
    # simulated: 3 + 1 + 1 s of kernels (the all-reduce is not a kernel kind), a 10 s step:
    # gemm 3/5 * 10 = 6, attention 1/5 * 10 = 2, elementwise 2
    simulated = _bars([("L0.qkv", 2.0), ("L1.down", 1.0), ("L0.attention", 1.0), ("L0.attn_norm", 0.5),
                       ("L0.mlp_residual", 0.5), ("L0.attn_allreduce", 7.0)])
    # profiled: 2 + 1 + 1 s, an 8 s step: gemm 4, attention 2, elementwise 2
    profiled = _bars([("nvjet_sm90_a", 2.0), ("cudnn_sdpa_fprop", 1.0), ("elementwise_kernel<silu>", 0.75),
                      ("Memset (Device)", 0.25)])
    kinds = {k.kind: k for k in kind_times(load_model("small-1024"), simulated, 10.0, profiled, 8.0)}
    assert (kinds[GEMM].simulated_s, kinds[GEMM].profiled_s) == (pytest.approx(6.0), pytest.approx(4.0))
    assert (kinds[ATTENTION].simulated_s, kinds[ATTENTION].profiled_s) == (pytest.approx(2.0), pytest.approx(2.0))
    assert kinds[ELEMENTWISE].simulated_s == pytest.approx(2.0) and kinds[ELEMENTWISE].profiled_s == pytest.approx(2.0)
    assert kinds[GEMM].ratio == pytest.approx(4.0 / 6.0)
