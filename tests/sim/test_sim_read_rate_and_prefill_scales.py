"""HBM reads at the read rate, read + write traffic at the copy rate; prefill time scales (hand-worked)."""

from __future__ import annotations

import dataclasses

import pytest

from sim.costs.kernels import op_cost
from sim.costs.model import CostModel
from sim.params import datasheet_params, resolve_params
from topology.cluster import load_cluster
from topology.ops import Op
from topology.profile import HardwareProfile, ProfileParams
from topology.workload import TokenShape

H100 = load_cluster("h100x1")
# compute free, launches and kernel latencies free, reads at 2 B/us, read + write traffic at 1 B/us
HAND = dataclasses.replace(datasheet_params(H100), peak_flops_per_s=1e30, hbm_bw_bytes_per_s=1e6,
                           hbm_read_bw_bytes_per_s=2e6, hbm_efficiency=1.0, launch_overhead_eager_s=0.0,
                           launch_overhead_graph_s=0.0, gemm_latency_s=0.0, gemm_bw_efficiency=1.0,
                           attention_latency_s=0.0, attention_bw_efficiency=1.0, norm_latency_s=0.0,
                           elementwise_latency_s=0.0, kv_write_latency_s=0.0)
GEMM = Op("g", 0, "gemm", 2, in_features=4, out_features=8)
ATTENTION = Op("a", 0, "attention", 2, heads=2, kv_heads=2, head_dim=2)
NORM = Op("n", 0, "norm", 2, width=4)
DECODE = TokenShape(batch=1, new_tokens=1, context_len=4)
PREFILL = TokenShape(batch=1, new_tokens=4, context_len=4)


def test_weights_and_kv_reads_stream_at_the_read_rate_the_rest_at_the_copy_rate():
    cost = CostModel(params=HAND, cuda_graphs=True)
    gemm = op_cost(GEMM, DECODE, cost, 0.0)
    # weights 4 x 8 x 2 = 64 B at 2 B/us = 32 us; activations (4 + 8) x 2 = 24 B at 1 B/us = 24 us
    assert gemm.weights_s == pytest.approx(32e-6) and gemm.activations_s == pytest.approx(24e-6)
    attention = op_cost(ATTENTION, DECODE, cost, 0.0)
    # KV read 4 tokens x 2 (K, V) x 2 heads x 2 dims x 2 B = 64 B -> 32 us; appended 16 B -> 16 us
    assert attention.kv_s == pytest.approx(32e-6 + 16e-6)
    assert attention.activations_s == pytest.approx(16e-6)  # Q in, O out: 2 x 2 x 2 x 2 B


def test_prefill_time_scales_apply_to_their_kind_in_prefill_only():
    scaled = dataclasses.replace(HAND, prefill_gemm_time_scale=1.5, prefill_attention_time_scale=0.5,
                                 prefill_elementwise_time_scale=2.0)
    plain, fitted = CostModel(params=HAND, cuda_graphs=False), CostModel(params=scaled, cuda_graphs=False)
    appended_s = 64e-6  # attention's cache copies (4 tokens x 2 x 2 heads x 2 dims x 2 B at 1 B/us): not scaled
    for op, factor, apart_s in ((GEMM, 1.5, 0.0), (ATTENTION, 0.5, appended_s), (NORM, 2.0, 0.0)):
        expected_s = factor * (op_cost(op, PREFILL, plain, 0.0).time_s - apart_s) + apart_s
        assert op_cost(op, PREFILL, fitted, 0.0).time_s == pytest.approx(expected_s)
        assert op_cost(op, DECODE, fitted, 0.0).time_s == op_cost(op, DECODE, plain, 0.0).time_s


def test_a_profile_without_a_read_rate_prices_reads_at_its_copy_rate():
    old = HardwareProfile(gpu_name="H100", gpu_count=1, params=ProfileParams(hbm_bw_bytes_per_s=2.7e12))
    new = HardwareProfile(gpu_name="H100", gpu_count=1,
                          params=ProfileParams(hbm_bw_bytes_per_s=2.7e12, hbm_read_bw_bytes_per_s=3.1e12))
    assert resolve_params(H100, old).hbm_effective_read_bw_bytes_per_s == pytest.approx(2.7e12)
    assert resolve_params(H100, new).hbm_effective_read_bw_bytes_per_s == pytest.approx(3.1e12)
    assert resolve_params(H100, new).hbm_effective_bw_bytes_per_s == pytest.approx(2.7e12)
    sheet = resolve_params(H100, None)
    assert sheet.hbm_read_bw_bytes_per_s == sheet.hbm_bw_bytes_per_s == 3.35e12
