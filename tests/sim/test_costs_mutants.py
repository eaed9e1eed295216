"""Hand-worked prices of the pure cost functions, written to kill mutmut's surviving mutants (issue 21;
benchmarks/mutation/README.md). Every expected number is worked out below from ``P``, whose rates are
chosen so that one byte or one FLOP is a round number of microseconds:

* HBM copy (read + write streams): 1e6 B/s x efficiency 0.5 = 2 us/B; HBM read: 2e6 x 0.5 = 1 us/B;
  a memory-bound GEMM reads weights at 1 us/B x 1 / gemm_bw_efficiency 0.5 = 2 us/B; decode attention
  reads the cache at 1 us/B / attention_bw_efficiency 0.25 = 4 us/B; L2 0.25 us/B;
* peak 1e6 FLOP/s (1 us/FLOP): GEMMs at efficiency 0.5 x min(1, rows / 4), attention at 0.25;
* fixed kernel times: GEMM 3 us, attention 5, norm 7, elementwise 11, each cache copy 13;
  launches 19 us in a CUDA graph, 17 eager;
* links: NVLink 1e6 B/s (x 0.5 for messages = 2 us/B, x 0.25 for all-reduces = 4 us/B), NIC 1e5 B/s
  x 0.5 = 20 us/B; latencies: p2p 3 us, ring step 2 us, all-reduce base 10 us, across nodes 7 us;
* prefill time scales: GEMM 2, attention 3, elementwise 5.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from functools import partial
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest
from sim_toy import toy_experiment, toy_profile

from sim.costs import memo
from sim.costs.build import (
    _attention_op,
    _build_tables,
    _fitted_base,
    _gemm_op,
    _measured_dtype_bytes,
    build_cost_model,
)
from sim.costs.comm import CommCost, allreduce_cost, hop_bw_bytes_per_s, p2p_cost
from sim.costs.kernels import OpCost, op_cost, overlap_eager_launches
from sim.costs.measured import (
    Correction,
    KernelTable,
    ShapeCurve,
    attention_features,
    build_table,
    fit_affine,
    gemm_features,
)
from sim.costs.memo import PriceMemo
from sim.costs.model import CostModel
from sim.costs.pipeline import decode_step_s, prefill_step_s, prefill_ttft_s, step_s
from sim.costs.residency import plan_counts_sram, residency, residency_capacity_bytes, weight_hit_fraction
from sim.costs.roofline import attention_roofline_s, gemm_efficiency, gemm_roofline_s, hbm_time_s, prefill_time_scale
from sim.costs.stage import (
    ALLREDUCE,
    COMPUTE,
    Segment,
    StagePass,
    compile_steps,
    pass_layout,
    stage_ops,
    stage_pass,
    stage_residency,
)
from sim.costs.transfers import boundary_time_s, boundary_transfers, group_ports
from sim.params import FITTABLE_PARAMS, SimParams, datasheet_params, resolve_params
from sim.resolve import resolve_given
from topology.cluster import load_cluster
from topology.errors import LayerwiseError
from topology.experiment import Experiment
from topology.footprint import Footprint
from topology.ops import Op
from topology.plan import Plan, Stage
from topology.profile import AttentionPoint, CollectiveFit, GemmPoint, HardwareProfile, ProfileParams
from topology.workload import TokenShape

US = 1e-6
P = SimParams(
    peak_flops_per_s=1e6, compute_efficiency=0.5, attention_efficiency=0.25, gemm_min_rows=4.0,
    gemm_latency_s=3e-6, gemm_bw_efficiency=0.5, attention_latency_s=5e-6, attention_bw_efficiency=0.25,
    norm_latency_s=7e-6, elementwise_latency_s=11e-6, kv_write_latency_s=13e-6,
    hbm_bw_bytes_per_s=1e6, hbm_read_bw_bytes_per_s=2e6, hbm_efficiency=0.5, l2_bw_bytes_per_s=4e6,
    l2_usable_bytes=1000.0, launch_overhead_eager_s=17e-6, launch_overhead_graph_s=19e-6,
    intra_node_bw_bytes_per_s=1e6, inter_node_bw_bytes_per_s=1e5, link_efficiency=0.5,
    collective_latency_s=2e-6, collective_base_latency_s=10e-6, collective_link_efficiency=0.25,
    tp_straggler_fraction=0.1, p2p_latency_s=3e-6, inter_node_latency_s=7e-6,
    prefill_gemm_time_scale=2.0, prefill_attention_time_scale=3.0, prefill_elementwise_time_scale=5.0,
    serving_iteration_host_s=1e-3,
)
FAST = replace(P, peak_flops_per_s=1e8)  # arithmetic 100x cheaper: the kernels below turn memory-bound
GRAPH = CostModel(params=P, cuda_graphs=True)
GRAPH_FAST = CostModel(params=FAST, cuda_graphs=True)
TWO_NODES = load_cluster("seed-16xh100")  # 8 GPUs a node: gpu0-gpu7, gpu8-gpu15

GEMM = Op("L0.up", 0, "gemm", 2, in_features=8, out_features=16)  # 256 B of weights
ATTENTION = Op("L0.attention", 0, "attention", 2, heads=2, kv_heads=1, head_dim=4)


def _tokens(batch: int, new: int = 1, context: int = 1) -> TokenShape:
    return TokenShape(batch=batch, new_tokens=new, context_len=context)


def _check(cost: OpCost, **expected: float) -> None:
    for name, value in expected.items():
        assert getattr(cost, name) == pytest.approx(value, rel=1e-12, abs=1e-15), name


# ---------------------------------------------------------------------------------------------- GEMM


def test_a_memory_bound_decode_gemm_with_a_quarter_of_its_weights_in_l2():
    # 1 token: 256 FLOP at 1e8 x 0.5 x 1/4 = 20.48 us of arithmetic; weights 64 B from L2 (16 us) and
    # 192 B from HBM (384 us); activations (8 + 16) x 2 = 48 B (96 us); the 3 us latency goes to the
    # weights (the larger part): 403 + 96 = 499 us, plus one 19 us launch.
    cost = op_cost(GEMM, _tokens(1), GRAPH_FAST, 0.25)
    _check(cost, time_s=518 * US, compute_s=0.0, weights_s=403 * US, activations_s=96 * US, kv_s=0.0,
           launch_s=19 * US, flops=256, weight_bytes=256, activation_bytes=48, kv_bytes=0, l2_bytes=64,
           hbm_bytes=240, kernels=1, evidence=0.0)
    assert (cost.name, cost.kind) == ("L0.up", "gemm")


def test_a_memory_bound_gemm_whose_activations_outweigh_its_weights_takes_the_latency_there():
    # 16 tokens, all weights in L2: 256 x 0.25 = 64 us; activations 16 x 24 x 2 = 768 B, 1536 us + 3 us.
    # Arithmetic 8192 FLOP / (1e8 x 0.5) = 163.84 us.
    cost = op_cost(GEMM, _tokens(16), GRAPH_FAST, 1.0)
    _check(cost, time_s=(64 + 1539 + 19) * US, weights_s=64 * US, activations_s=1539 * US, compute_s=0.0,
           l2_bytes=256, hbm_bytes=768)


def test_a_compute_bound_decode_gemm_below_the_minimum_rows():
    # 2 tokens: 512 FLOP at 1e6 x 0.5 x 2/4 = 2048 us; the memory side is 400 + 3 + 96 x 2 = 595 us.
    cost = op_cost(GEMM, _tokens(2), GRAPH, 0.25)
    _check(cost, time_s=(2048 + 19) * US, compute_s=2048 * US, weights_s=0.0, activations_s=0.0, flops=512)


def test_a_compute_bound_gemm_above_the_minimum_rows_runs_at_the_full_efficiency():
    # 8 tokens: 2048 FLOP at 1e6 x 0.5 x min(1, 8/4) = 4096 us (the memory side: 1171 us)
    cost = op_cost(GEMM, _tokens(8), GRAPH, 0.0)
    _check(cost, time_s=(4096 + 19) * US, compute_s=4096 * US)


def test_a_prefill_gemm_is_scaled_and_eager_launches_cost_the_eager_overhead():
    # 2 sequences of 4 new tokens = 8 tokens, compute-bound as above: 4096 us x 2 (prefill GEMM scale)
    cost = op_cost(GEMM, _tokens(2, 4, 4), CostModel(params=P, cuda_graphs=False), 0.0)
    _check(cost, time_s=(8192 + 17) * US, compute_s=8192 * US, launch_s=17 * US)


# ----------------------------------------------------------------------------------------- attention


def test_memory_bound_decode_attention_streams_the_cache_and_appends_k_and_v():
    # context 8: 256 FLOP (10.24 us at 1e8 x 0.25); the cache read 1 x 8 x 2 x 1 x 4 x 2 = 128 B at 4 us/B
    # = 512 us + the 5 us latency; Q in and O out 32 B = 64 us; K and V appended: 2 x 13 us + 16 B x 2 us;
    # three launches.
    cost = op_cost(ATTENTION, _tokens(1, 1, 8), GRAPH_FAST, 0.0)
    _check(cost, time_s=(517 + 64 + 58 + 57) * US, compute_s=0.0, kv_s=(517 + 58) * US, activations_s=64 * US,
           weights_s=0.0, launch_s=57 * US, flops=256, kv_bytes=144, activation_bytes=32, hbm_bytes=176,
           kernels=3, weight_bytes=0, l2_bytes=0)


def test_compute_bound_decode_attention_pays_no_fixed_latency():
    # 256 FLOP at 1e6 x 0.25 = 1024 us (above 581 us of memory); the appends 58 us, launches 57 us
    cost = op_cost(ATTENTION, _tokens(1, 1, 8), GRAPH, 0.0)
    _check(cost, time_s=(1024 + 58 + 57) * US, compute_s=1024 * US, kv_s=58 * US, activations_s=0.0)


def test_compute_bound_prefill_attention_adds_its_latency_and_is_scaled():
    # 4 new tokens of a context of 8: pairs 4 x 4 + 4 x 5 / 2 = 26, 4 x 2 x 4 x 26 = 832 FLOP = 3328 us;
    # memory: cache 128 B x 4 us + activations 128 B x 2 us = 768 us; (5 + 3328) x 3 = 9999 us;
    # appends 2 x 13 + 64 B x 2 us = 154 us (not scaled)
    cost = op_cost(ATTENTION, _tokens(1, 4, 8), GRAPH, 0.0)
    _check(cost, time_s=(9999 + 154 + 57) * US, compute_s=9999 * US, kv_s=154 * US, flops=832, kv_bytes=192)


def test_memory_bound_prefill_attention_is_scaled_by_its_own_factor():
    # at 1e8 FLOP/s 33.28 us < 768 us: kv 512 + 5, activations 256, each x 3
    cost = op_cost(ATTENTION, _tokens(1, 4, 8), GRAPH_FAST, 0.0)
    _check(cost, time_s=(1551 + 768 + 154 + 57) * US, compute_s=0.0, kv_s=(1551 + 154) * US,
           activations_s=768 * US)


# --------------------------------------------------------------------------------------- elementwise


def test_a_norm_reads_its_weights_partly_from_l2():
    # width 8, 2 tokens: weights 16 B, half from L2 (2 us) and half read from HBM (8 us); activations
    # 2 x 2 x 8 x 2 = 64 B (128 us) + the 7 us norm latency
    norm = Op("L0.norm", 0, "norm", 2, width=8)
    cost = op_cost(norm, _tokens(2), GRAPH, 0.5)
    _check(cost, time_s=(10 + 135 + 19) * US, weights_s=10 * US, activations_s=135 * US, l2_bytes=8,
           hbm_bytes=8 + 64, kernels=1)
    prefill = op_cost(norm, _tokens(1, 2, 2), GRAPH, 0.5)  # the same 2 tokens in one prefill: x 5
    _check(prefill, time_s=(5 * 145 + 19) * US)


def test_a_gated_activation_and_a_three_term_residual_are_two_kernels_each():
    # gated: 3 x 2 x 8 x 2 = 96 B (192 us) + 2 x 11 us; residual of 3: 4 x 2 x 8 x 2 = 128 B (256 us) + 2 x 11
    gated = op_cost(Op("L0.act", 0, "activation", 2, width=8, gated=True), _tokens(2), GRAPH, 0.0)
    _check(gated, time_s=(214 + 38) * US, activations_s=214 * US, weights_s=0.0, kernels=2, launch_s=38 * US)
    residual = op_cost(Op("L0.res", 0, "residual", 2, width=8, terms=3), _tokens(2), GRAPH, 0.0)
    _check(residual, time_s=(278 + 38) * US, activations_s=278 * US, kernels=2)


# ---------------------------------------------------------------------------------------------- eager


def _kernel(name: str, kernel_us: float, kernels: int = 1) -> OpCost:
    return OpCost(name, "gemm", (kernel_us + 1) * US, 0.0, 0, 0, 0, 0.0, 0.0, kernel_us * US, 0.0, 0.0, 0.0,
                  1 * US, kernels=kernels)


def test_eager_launches_expose_the_host_where_kernels_are_short():
    # host 10 us a kernel. a (2 kernels, 5 us): issued at 10 and 20 us, ends at max(10 + 5, 20) = 20: waits 15 us.
    # b (1 kernel, 30 us): issued at 30, runs 30-60: waits 10. c (1 kernel, 1 us): issued at 40, runs 60-61: 0.
    ops = overlap_eager_launches((_kernel("a", 5, 2), _kernel("b", 30), _kernel("c", 1)), 10 * US)
    assert [op.launch_s / US for op in ops] == pytest.approx([15, 10, 0], abs=1e-9)
    assert [op.time_s / US for op in ops] == pytest.approx([20, 40, 1], abs=1e-9)
    assert [op.name for op in ops] == ["a", "b", "c"]


# ------------------------------------------------------------------------------------------ roofline


def test_roofline_pieces():
    assert gemm_efficiency(2, P) == 0.25 and gemm_efficiency(8, P) == 0.5
    assert hbm_time_s(3, 5, P) == pytest.approx(3 * US + 10 * US)
    assert prefill_time_scale("gemm", _tokens(1, 2, 2), P) == 2.0
    assert prefill_time_scale("attention", _tokens(1, 2, 2), P) == 3.0
    assert prefill_time_scale("norm", _tokens(1, 2, 2), P) == 5.0
    assert prefill_time_scale("gemm", _tokens(4), P) == 1.0


def test_gemm_roofline():
    # (2 x 8) @ (8 x 16): 512 FLOP at 1e6 x 0.5 x 2/4 = 2048 us; memory: 256 B read (256 us) + (16 + 32) x 2
    # = 96 B copied (192 us) = 448 us, which wins at 1e8 FLOP/s (20.48 us)
    assert gemm_roofline_s(2, 16, 8, 2, P) == pytest.approx(2048 * US, rel=1e-12)
    assert gemm_roofline_s(2, 16, 8, 2, FAST) == pytest.approx(448 * US, rel=1e-12)
    assert gemm_roofline_s(8, 16, 8, 2, P) == pytest.approx(4096 * US, rel=1e-12)  # full efficiency at 8 rows


def test_attention_roofline():
    # decode, context 8: 256 FLOP = 1024 us; memory: 128 B of cache read (128 us) + (16 B appended + 32 B
    # of Q and O) x 2 us = 224 us
    assert attention_roofline_s(1, 2, 1, 4, 1, 8, 2, P) == pytest.approx(1024 * US, rel=1e-12)
    assert attention_roofline_s(1, 2, 1, 4, 1, 8, 2, FAST) == pytest.approx(224 * US, rel=1e-12)
    # prefill of 4 of 8, 2 sequences: 2 x 832 FLOP = 6656 us; memory: 256 B read + (128 + 256) B x 2 us = 1024 us
    assert attention_roofline_s(2, 2, 1, 4, 4, 8, 2, P) == pytest.approx(6656 * US, rel=1e-12)
    assert attention_roofline_s(2, 2, 1, 4, 4, 8, 2, FAST) == pytest.approx(1024 * US, rel=1e-12)
    # 4 heads, 2 KV heads, decode of context 8: 256 B of cache read (256 us), (32 B appended + 64 B) x 2 us
    assert attention_roofline_s(1, 4, 2, 4, 1, 8, 2, FAST) == pytest.approx(448 * US, rel=1e-12)


# ---------------------------------------------------------------------------------------- pipeline


def test_pipeline_formulas():
    assert decode_step_s(10.0, 3.0, 4) == 12.0  # bottleneck-bound: 4 x 3
    assert decode_step_s(10.0, 3.0, 2) == 10.0  # bubble-bound: the cycle
    assert prefill_step_s(10.0, 3.0, 4) == 19.0  # 10 + 3 x 3
    assert prefill_ttft_s(10.0, 3.0, 4) == 14.5  # 10 + 1.5 x 3
    assert step_s("decode", 10.0, 3.0, 4) == 12.0
    assert step_s("prefill", 10.0, 3.0, 4) == 19.0


# --------------------------------------------------------------------------------------------- comm


def test_point_to_point_inside_and_across_nodes():
    inside = p2p_cost(1000, TWO_NODES.route("gpu0", "gpu1"), GRAPH)
    assert (inside.latency_s, inside.serialization_s, inside.bytes_sent_per_rank) == pytest.approx(
        (3 * US, 2000 * US, 1000.0))
    across = p2p_cost(1000, TWO_NODES.route("gpu0", "gpu9"), GRAPH)  # 20 us/B over the NIC
    assert (across.latency_s, across.serialization_s, across.bytes_sent_per_rank) == pytest.approx(
        (7 * US, 20000 * US, 1000.0))
    assert p2p_cost(0, TWO_NODES.route("gpu0", "gpu1"), GRAPH).time_s == 0.0
    assert p2p_cost(1000, (), GRAPH).bytes_sent_per_rank == 0.0
    assert hop_bw_bytes_per_s(("gpu0", "nvswitch0"), GRAPH) == pytest.approx(5e5)
    assert hop_bw_bytes_per_s(("gpu0", "network"), GRAPH) == pytest.approx(5e4)


def test_ring_allreduce_inside_one_node():
    # 4 ranks, 1000 B: 10 us + 2 x 3 x 2 us; 2 x 3/4 x 1000 B = 1500 B at 4 us/B
    ring = allreduce_cost(1000, ("gpu0", "gpu1", "gpu2", "gpu3"), TWO_NODES, GRAPH)
    assert (ring.latency_s, ring.serialization_s, ring.bytes_sent_per_rank) == pytest.approx(
        (22 * US, 6000 * US, 1500.0), rel=1e-12)
    assert allreduce_cost(1000, ("gpu0",), TWO_NODES, GRAPH).time_s == 0.0
    pair = allreduce_cost(1000, ("gpu0", "gpu1"), TWO_NODES, GRAPH)  # 10 + 2 x 1 x 2 us; 1000 B at 4 us/B
    assert (pair.latency_s, pair.serialization_s, pair.bytes_sent_per_rank) == pytest.approx(
        (14 * US, 4000 * US, 1000.0), rel=1e-12)
    one_byte = allreduce_cost(1, ("gpu0", "gpu1", "gpu2", "gpu3"), TWO_NODES, GRAPH)  # 1.5 B at 4 us/B
    assert (one_byte.latency_s, one_byte.serialization_s) == pytest.approx((22 * US, 6 * US), rel=1e-12)
    assert allreduce_cost(0, ("gpu0", "gpu1"), TWO_NODES, GRAPH).bytes_sent_per_rank == 0.0


def test_hierarchical_allreduce_over_two_nodes_with_uneven_ranks():
    # 3 ranks on node 0, 1 on node 1: per node 3 (the larger), shard 6000 / 3 = 2000 B.
    # latency 10 + 2 x 2 x 2 + 2 x 1 x 7 = 32 us; intra 2 x 2/3 x 6000 = 8000 B at 4 us/B = 32000 us;
    # inter 2 x 1/2 x 2000 = 2000 B at 20 us/B = 40000 us
    ring = allreduce_cost(6000, ("gpu5", "gpu6", "gpu7", "gpu8"), TWO_NODES, GRAPH)
    assert (ring.latency_s, ring.serialization_s, ring.bytes_sent_per_rank) == pytest.approx(
        (32 * US, 72000 * US, 10000.0), rel=1e-12)


def test_measured_collective_fits_inside_one_node():
    fits = (CollectiveFit(op="allreduce", group_size=4, latency_s=20e-6, bw_bytes_per_s=1e6),
            CollectiveFit(op="sendrecv", group_size=2, latency_s=4e-6, bw_bytes_per_s=2e6))
    eager = CostModel(params=P, cuda_graphs=False, collectives=fits)
    ring = allreduce_cost(1000, ("gpu0", "gpu1", "gpu2", "gpu3"), TWO_NODES, eager)
    assert (ring.latency_s, ring.serialization_s, ring.bytes_sent_per_rank) == pytest.approx(
        (20 * US, 1500 * US, 1500.0), rel=1e-12)
    across = allreduce_cost(1000, ("gpu6", "gpu7", "gpu8", "gpu9"), TWO_NODES, eager)  # the formula
    assert across.latency_s == pytest.approx((10 + 4 + 14) * US, rel=1e-12)
    msg = p2p_cost(1000, TWO_NODES.route("gpu0", "gpu1"), eager)
    assert (msg.latency_s, msg.serialization_s, msg.bytes_sent_per_rank) == pytest.approx(
        (4 * US, 500 * US, 1000.0), rel=1e-12)
    assert p2p_cost(1000, TWO_NODES.route("gpu0", "gpu9"), eager).latency_s == pytest.approx(7 * US)


# ---------------------------------------------------------------------------------------- transfers


def _stage(index: int, devices: tuple[str, ...]) -> Stage:
    return Stage(index, 0, 1, devices, len(devices), Footprint(0, 0, 0))


def test_boundary_transfers_fan_out_from_rank_j_mod_t():
    # TP 2 (gpu0, gpu1) to TP 4 (gpu0, gpu2, gpu3, gpu5): rank j gets rank j mod 2's copy; gpu0 -> gpu0 is local
    src, dst = _stage(0, ("gpu0", "gpu1")), _stage(1, ("gpu0", "gpu2", "gpu3", "gpu5"))
    transfers = boundary_transfers(src, dst, 1000, TWO_NODES, GRAPH)
    assert [(t.src, t.dst) for t in transfers] == [("gpu1", "gpu2"), ("gpu0", "gpu3"), ("gpu1", "gpu5")]
    assert all(t.cost.time_s == pytest.approx(2003 * US) for t in transfers)
    assert transfers[0].hops == (("gpu1", "nvswitch0"), ("nvswitch0", "gpu2"))
    # gpu1's two messages share its port: the second starts at 2000 us and ends at 4003 us
    assert boundary_time_s(transfers) == pytest.approx(4003 * US, rel=1e-12)
    assert boundary_time_s(()) == 0.0


def test_group_ports_inside_one_node_leave_the_nic_out():
    inside = group_ports(_stage(0, ("gpu0", "gpu1")), TWO_NODES)
    assert ("gpu0", "nvswitch0") in inside and ("nvswitch0", "gpu1") in inside
    assert all("network" not in hop for hop in inside)
    across = group_ports(_stage(0, ("gpu7", "gpu8")), TWO_NODES)
    assert ("gpu7", "network") in across and ("network", "gpu8") in across


# ------------------------------------------------------------------------- measured kernels (build)


@pytest.fixture
def fresh_memo():
    """Cost-model pieces are memoized by value across tests (sim.costs.memo.built): start without them,
    so what is built below is built here (a test run that imported other tests first may hold them)."""
    saved = dict(memo._BUILT)
    memo._BUILT.clear()
    yield
    memo._BUILT.clear()
    memo._BUILT.update(saved)


# Decode GEMMs on the line time = 19 us (the graph launch) + 4 us + bytes / 5e5 B/s (2 us/B), bytes =
# (n k + m (n + k)) x 2: 160 B, 352 B, 768 B and (at m = 64, still a decode GEMM) 2176 B; a GEMM of 128
# rows and one no longer than its launch are left out of the fit.
FIT_GEMMS = (GemmPoint(1, 8, 8, (19 + 4 + 320) * US), GemmPoint(2, 16, 8, (19 + 4 + 704) * US),
             GemmPoint(4, 16, 16, (19 + 4 + 1536) * US), GemmPoint(64, 8, 8, (19 + 4 + 4352) * US),
             GemmPoint(128, 8, 8, 1.0), GemmPoint(1, 4, 4, 10 * US), GemmPoint(1, 4, 8, 19e-6))
# Decode attention (2 heads, 1 KV head, head_dim 4) on time = 19 + 6 us + (KV read + Q and O bytes) x 4 us/B:
# 128 + 32, 256 + 64, 512 + 32 B; a prefill point is no part of the decode fit.
FIT_ATTENTION = (AttentionPoint(1, 2, 1, 4, 1, 8, (19 + 6 + 640) * US),
                 AttentionPoint(2, 2, 1, 4, 1, 8, (19 + 6 + 1280) * US),
                 AttentionPoint(1, 2, 1, 4, 1, 32, (19 + 6 + 2176) * US), AttentionPoint(1, 2, 1, 4, 4, 8, 1.0),
                 AttentionPoint(1, 2, 1, 4, 1, 16, 19e-6))  # no longer than its launch: left out
BASE_NAMES = ("gemm_latency_s", "gemm_bw_efficiency", "attention_latency_s", "attention_bw_efficiency")


def test_the_base_fit_recovers_latency_and_bandwidth_share_from_decode_points():
    # HBM read at 1 us/B (1e6 B/s): 2 us/B is a share of 0.5, 4 us/B of 0.25
    fitted = _fitted_base(P, FIT_GEMMS, FIT_ATTENTION, 2, frozenset())
    assert fitted.keys() == set(BASE_NAMES)
    assert [fitted[name] for name in BASE_NAMES] == pytest.approx([4 * US, 0.5, 6 * US, 0.25], rel=1e-6)
    # a name the profile fixed keeps its value; fewer than 3 points fit nothing
    assert _fitted_base(P, FIT_GEMMS, FIT_ATTENTION, 2, frozenset({"gemm_latency_s"})).keys() == set(BASE_NAMES[1:])
    assert _fitted_base(P, FIT_GEMMS[:2], FIT_ATTENTION[:2], 2, frozenset()) == {}
    # GEMMs too few to fit leave attention to be fitted; the point of 64 rows is the third decode GEMM
    assert _fitted_base(P, FIT_GEMMS[:2], FIT_ATTENTION, 2, frozenset()).keys() == set(BASE_NAMES[2:])
    assert _fitted_base(P, FIT_GEMMS[1:], (), 2, frozenset())["gemm_latency_s"] == pytest.approx(4 * US, rel=1e-6)


def test_a_base_fit_outside_the_plausible_bandwidth_share_is_not_used():
    # at 20 us/B the share is 0.05 (< 0.2): no GEMM update; at 0.5 us/B it is 2 (> 1.5)
    slow = tuple(GemmPoint(p.m, p.n, p.k, 19 * US + (p.time_s - 23 * US) * 10 + 4 * US) for p in FIT_GEMMS[:4])
    fast = tuple(GemmPoint(p.m, p.n, p.k, 19 * US + (p.time_s - 23 * US) / 4 + 4 * US) for p in FIT_GEMMS[:4])
    assert _fitted_base(P, slow, (), 2, frozenset()) == {}
    assert _fitted_base(P, fast, (), 2, frozenset()) == {}
    # at 1.5 us/B a share of 2/3, inside the range
    fits = tuple(GemmPoint(p.m, p.n, p.k, 19 * US + (p.time_s - 23 * US) * 0.75 + 4 * US) for p in FIT_GEMMS[:4])
    assert _fitted_base(P, fits, (), 2, frozenset())["gemm_bw_efficiency"] == pytest.approx(2 / 3, rel=1e-6)


def test_measured_points_become_operators_and_correction_curves():
    op, shape = _attention_op(AttentionPoint(3, 2, 1, 4, 2, 8, 1.0), 2)
    assert op == Op("attention", 0, "attention", 2, heads=2, kv_heads=1, head_dim=4)
    assert shape == TokenShape(batch=3, new_tokens=2, context_len=8)
    op, shape = _gemm_op(GemmPoint(5, 16, 8, 1.0), 4)
    assert op == Op("gemm", 0, "gemm", 4, in_features=8, out_features=16)
    assert shape == TokenShape(batch=5, new_tokens=1, context_len=1)
    assert _measured_dtype_bytes(HardwareProfile("x", 1, ProfileParams(), raw={"gemm": {"dtype": "float32"}})) == 4
    assert _measured_dtype_bytes(HardwareProfile("x", 1, ProfileParams(), raw={"gemm": {"dtype": "bfloat16"}})) == 2
    assert _measured_dtype_bytes(HardwareProfile("x", 1, ProfileParams(), raw={"gemm": "float32"})) == 2
    assert _measured_dtype_bytes(HardwareProfile("x", 1, ProfileParams())) == 2
    assert _measured_dtype_bytes(HardwareProfile("x", 1, ProfileParams(), raw=[])) == 2  # type: ignore[arg-type]
    # Under P, a GEMM (1 x 8) @ (8 x 8) is compute-bound: 128 FLOP at 1e6 x 0.5 x 1/4 = 1024 us; measured
    # 2048 us (after the 19 us launch): ratio 2 at log size 0. Decode attention of context 8: 1024 us
    # (compute-bound, as above), measured 3072 us: ratio 3 at log(128 B). Prefill of 4 of 8: 5 + 3328 us,
    # measured half of it, at log(832 FLOP). A point no longer than the launch is left out.
    gemm, decode, prefill = _build_tables(
        P, (GemmPoint(1, 8, 8, (19 + 2048) * US), GemmPoint(1, 4, 4, 19e-6)),
        (AttentionPoint(1, 2, 1, 4, 1, 8, (19 + 3072) * US), AttentionPoint(1, 2, 1, 4, 4, 8, (19 + 3333 / 2) * US),
         AttentionPoint(1, 2, 1, 4, 1, 16, 19e-6)), 2)
    expected = ((gemm, (math.log(8), math.log(8)), 0.0, 2.0),
                (decode, (0.5 * math.log(2), math.log(4)), math.log(128), 3.0),
                (prefill, (0.5 * math.log(2), math.log(4)), math.log(832), 0.5))
    for table, shape_features, log_size, ratio in expected:
        assert len(table.curves) == 1
        curve = table.curves[0]
        assert curve.shape == pytest.approx(shape_features)
        assert list(curve.log_sizes) == pytest.approx([log_size])
        assert list(curve.log_ratios) == pytest.approx([math.log(ratio)], rel=1e-9)
    # memory-bound at 1e8 FLOP/s, the same GEMM's base reads its 128 B of weights from HBM (no L2):
    # 3 + 256 + 64 us; measured twice that
    (memory_bound, *_) = _build_tables(FAST, (GemmPoint(1, 8, 8, (19 + 646) * US),), (), 2)
    assert list(memory_bound.curves[0].log_ratios) == pytest.approx([math.log(2)], rel=1e-9)


def test_a_profile_builds_the_fitted_base_and_its_corrections(fresh_memo):
    # every parameter but the four of the base fit given as P's: the fit sets those four
    given = {name: getattr(P, name) for name in FITTABLE_PARAMS if name not in BASE_NAMES}
    profile = HardwareProfile("x", 1, ProfileParams(gemm_points=FIT_GEMMS, attention_points=FIT_ATTENTION,
                                                    sim_params=given))
    cost = build_cost_model(TWO_NODES, profile, cuda_graphs=True)
    assert [getattr(cost.params, name) for name in BASE_NAMES] == pytest.approx([4 * US, 0.5, 6 * US, 0.25], rel=1e-6)
    assert cost.measured_dtype_bytes == 2 and cost.cuda_graphs
    # shapes (n, k): (8, 8) at 1, 64 and 128 rows, (16, 8), (16, 16); (4, 4) is no longer than its launch
    assert len(cost.gemm_table.curves) == 3 and len(cost.decode_attention_table.curves) == 1
    assert len(cost.prefill_attention_table.curves) == 1
    # the GEMM (1 x 8) @ (8 x 8) measured 4 + 320 us; its base under the fitted parameters is 1024 us of
    # arithmetic (as above): corrected, it costs what was measured
    assert op_cost(Op("g", 0, "gemm", 2, in_features=8, out_features=8), _tokens(1), cost, 0.0).time_s == pytest.approx(
        (324 + 19) * US, rel=1e-9)
    again = build_cost_model(TWO_NODES, profile, cuda_graphs=True)  # the memo gives the same pieces
    assert again == cost


def test_the_correction_memo_keeps_decode_and_prefill_apart():
    # one shape, a decode curve of ratio 3 and a prefill curve of ratio 1/2; decode attention of context 12
    # reads 192 B of cache and a prefill of 3 new tokens does 4 x 2 x 4 x 6 = 192 FLOP: the same log size.
    features = attention_features(2, 1, 4)
    decode = build_table([(features, 0.0, 3.0)], lambda i: 1.0)
    prefill = build_table([(features, 0.0, 0.5)], lambda i: 1.0)
    cost = CostModel(params=P, cuda_graphs=True, decode_attention_table=decode, prefill_attention_table=prefill)
    prices = PriceMemo()
    # decode: 384 FLOP = 1536 us (above 5 + 768 + 64 us) x 3, appends 58 us, three launches
    decode_price = op_cost(ATTENTION, _tokens(1, 1, 12), cost, 0.0, prices)
    assert decode_price.time_s == pytest.approx((4608 + 58 + 57) * US, rel=1e-12)
    assert op_cost(ATTENTION, _tokens(1, 1, 12), cost, 0.0, prices) == decode_price  # remembered
    # prefill: 192 FLOP = 768 us (above 48 B x 4 + 96 B x 2 = 384 us): (5 + 768) x 1/2 x 3 = 1159.5 us;
    # appends 2 x 13 + 48 B x 2 = 122 us; three launches
    priced = op_cost(ATTENTION, _tokens(1, 3, 3), cost, 0.0, prices)
    assert priced.time_s == pytest.approx((1159.5 + 122 + 57) * US, rel=1e-12)
    assert priced.evidence == 1.0
    assert op_cost(replace(ATTENTION, dtype_bytes=4), _tokens(1, 3, 3), cost, 0.0).evidence == 0.0


# --------------------------------------------------------------------------------------- parameters

# The seed's 16 x H100 from the data files: H100-SXM5 (989.4 TFLOP/s dense BF16, 3.35 TB/s HBM, 50 MiB of
# L2 of which 0.6 usable = 31,457,280 B, L2 at 5.5 TB/s, launches 5 and 1.5 us), NVLink 4 (450 GB/s a
# direction, 2 us) and one 400 Gb/s NIC a GPU (50 GB/s, 5 us); the inline defaults of sim/params.py.
SEED_DEFAULTS = {
    "peak_flops_per_s": 989.4e12, "compute_efficiency": 0.75, "attention_efficiency": 0.5, "gemm_min_rows": 64.0,
    "gemm_latency_s": 3.0e-6, "gemm_bw_efficiency": 0.9, "attention_latency_s": 6.0e-6,
    "attention_bw_efficiency": 1.0, "norm_latency_s": 2.3e-6, "elementwise_latency_s": 1.2e-6,
    "kv_write_latency_s": 2.2e-6, "hbm_bw_bytes_per_s": 3.35e12, "hbm_read_bw_bytes_per_s": 3.35e12,
    "hbm_efficiency": 0.9, "l2_bw_bytes_per_s": 5.5e12, "l2_usable_bytes": 31457280.0,
    "launch_overhead_eager_s": 5.0e-6, "launch_overhead_graph_s": 1.5e-6, "intra_node_bw_bytes_per_s": 450e9,
    "inter_node_bw_bytes_per_s": 50e9, "link_efficiency": 0.8, "collective_latency_s": 2.0e-6,
    "collective_base_latency_s": 6.6e-6, "collective_link_efficiency": 0.8, "tp_straggler_fraction": 0.03,
    "p2p_latency_s": 2.0e-6, "inter_node_latency_s": 5.0e-6, "prefill_gemm_time_scale": 1.0,
    "prefill_attention_time_scale": 1.0, "prefill_elementwise_time_scale": 1.0, "serving_iteration_host_s": 1.0e-3,
    "serving_layer_host_s": 0.0, "serving_seq_layer_host_s": 0.0,
}


def test_datasheet_defaults_of_the_seed_cluster():
    assert datasheet_params(TWO_NODES).to_dict() == SEED_DEFAULTS
    one_node = datasheet_params(load_cluster("h100x8"))  # no NIC: messages across nodes priced as NVLink
    assert (one_node.inter_node_bw_bytes_per_s, one_node.inter_node_latency_s) == (450e9, 2.0e-6)
    assert resolve_params(TWO_NODES, None) == datasheet_params(TWO_NODES)


def test_measured_profile_fields_replace_the_datasheet():
    measured = ProfileParams(hbm_bw_bytes_per_s=2e12, matmul_flops_per_s=7e14, l2_usable_bytes=40_000_000,
                             l2_bw_bytes_per_s=9e12, launch_overhead_eager_s=4e-6, launch_overhead_graph_s=1e-6,
                             sim_params={"link_efficiency": 0.6, "gemm_latency_s": 2e-6})
    params = resolve_params(TWO_NODES, HardwareProfile("H100", 16, measured))
    expected = dict(SEED_DEFAULTS, hbm_bw_bytes_per_s=2e12, hbm_read_bw_bytes_per_s=2e12, hbm_efficiency=1.0,
                    peak_flops_per_s=7e14, compute_efficiency=1.0, l2_usable_bytes=40_000_000.0,
                    l2_bw_bytes_per_s=9e12, launch_overhead_eager_s=4e-6, launch_overhead_graph_s=1e-6,
                    link_efficiency=0.6, collective_link_efficiency=0.6, gemm_latency_s=2e-6)
    assert params.to_dict() == expected
    both = {"link_efficiency": 0.6, "collective_link_efficiency": 0.5}
    with_read = resolve_params(TWO_NODES, HardwareProfile("H100", 16, replace(
        measured, hbm_read_bw_bytes_per_s=3e12, sim_params=both)))
    assert (with_read.hbm_bw_bytes_per_s, with_read.hbm_read_bw_bytes_per_s) == (2e12, 3e12)
    assert (with_read.link_efficiency, with_read.collective_link_efficiency) == (0.6, 0.5)
    with pytest.raises(LayerwiseError, match=re.escape("profile.sim_params.bogus")) as raised:
        resolve_params(TWO_NODES, HardwareProfile("H100", 16, ProfileParams(sim_params={"bogus": 1.0})))
    assert "unknown simulator parameter (known: peak_flops_per_s, compute_efficiency, " in str(raised.value)


def test_parameter_bounds():
    assert replace(P, gemm_latency_s=0.0, tp_straggler_fraction=0.0, compute_efficiency=1.0,
                   attention_efficiency=1.0, hbm_efficiency=1.0, link_efficiency=1.0,
                   collective_link_efficiency=1.0).gemm_latency_s == 0.0
    for name, value, message in (("gemm_latency_s", -1e-9, "must be >= 0"), ("tp_straggler_fraction", -0.1, ">= 0"),
                                 ("gemm_min_rows", 0.0, "must be > 0"),
                                 ("hbm_efficiency", -0.5, "> 0"),
                                 ("compute_efficiency", 1.01, "must be <= 1"), ("attention_efficiency", 1.5, "<= 1"),
                                 ("hbm_efficiency", 1.5, "<= 1"), ("link_efficiency", 1.5, "<= 1"),
                                 ("collective_link_efficiency", 1.5, "<= 1")):
        with pytest.raises(LayerwiseError, match=re.escape(f"sim_params.{name}")) as raised:
            replace(P, **{name: value})
        assert message in str(raised.value) and str(value) in str(raised.value)
    assert P.launch_overhead_s(True) == 19e-6 and P.launch_overhead_s(False) == 17e-6
    assert replace(P, serving_iteration_host_s=1.0).serving_iteration_host_s == 1.0  # a time of at most 1 s
    for name, value, message in (
            ("gemm_latency_s", math.inf, "sim_params.gemm_latency_s: must be a finite number, got inf"),
            ("gemm_latency_s", 1.5, "sim_params.gemm_latency_s: must be <= 1 s (a per-kernel, per-message or "
                                    "per-iteration time), got 1.5")):
        with pytest.raises(LayerwiseError) as raised:
            replace(P, **{name: value})
        assert str(raised.value) == message
    assert P.hbm_effective_bw_bytes_per_s == 5e5 and P.hbm_effective_read_bw_bytes_per_s == 1e6


# ---------------------------------------------------------------------------------------- residency


def test_residency_of_a_stage():
    assert residency_capacity_bytes(100.0, 30, True) == 130.0
    assert residency_capacity_bytes(100.0, 30, False) == 100.0
    partial = residency(10, 10, 15.0, False)  # (15 - 10) / 10
    assert (partial.hit_fraction, partial.fit, partial.weights_bytes, partial.streamed_bytes_per_pass,
            partial.capacity_bytes, partial.sram_counted) == (0.5, "partial", 10, 10, 15.0, False)
    assert residency(10, 5, 15.0, True).fit == "full" and residency(10, 20, 15.0, True).fit == "none"
    assert residency(10, 6, 15.0, True).hit_fraction == pytest.approx(0.9)  # D = 16 > 15: (15 - 6) / 10
    assert weight_hit_fraction(0, 0, 15.0) == 0.0 and weight_hit_fraction(-1, 0, 15.0) == 0.0
    assert weight_hit_fraction(1, 0, 15.0) == 1.0 and weight_hit_fraction(10, 5, 15.0) == 1.0
    summary = partial.summary(3)
    assert (summary.stage, summary.weights_bytes, summary.streamed_bytes_per_pass, summary.capacity_bytes,
            summary.sram_counted, summary.hit_fraction) == (3, 10, 10, 15.0, False, 0.5)


# -------------------------------------------------------------------------------------------- stage


def _segment(kind: str, label: str, duration_us: float, overlaps: bool = False, sent: float = 0.0) -> Segment:
    comm = CommCost(duration_us * US, 0.0, sent) if kind == ALLREDUCE else None
    ops = (_kernel(label, duration_us - 1),) if kind == COMPUTE else ()
    return Segment(kind, label, duration_us * US, ops, comm, overlaps)


def test_steps_pair_each_all_reduce_with_the_compute_after_it():
    # compute 10 | all-reduce 4, compute 3 beside it | all-reduce 5 | all-reduce 6, compute 2 after it | all-reduce 7
    segments = (_segment(COMPUTE, "a", 10), _segment(ALLREDUCE, "r1", 4, sent=100.0),
                _segment(COMPUTE, "b", 3, overlaps=True), _segment(ALLREDUCE, "r2", 5, sent=10.0),
                _segment(ALLREDUCE, "r3", 6, sent=1.0), _segment(COMPUTE, "c", 2), _segment(ALLREDUCE, "r4", 7))
    steps = compile_steps(segments)
    assert [(s.allreduce.label if s.allreduce else None, s.compute.label if s.compute else None) for s in steps] == [
        (None, "a"), ("r1", "b"), ("r2", None), ("r3", "c"), ("r4", None)]
    assert [s.overlapped for s in steps] == [False, True, False, False, False]
    assert [s.duration_s / US for s in steps] == pytest.approx([10, 4, 5, 8, 7])
    assert [s.allreduce_s / US for s in steps] == pytest.approx([0, 4, 5, 6, 7])
    assert [s.compute_s / US for s in steps] == pytest.approx([10, 3, 0, 2, 0])
    stage_pass = StagePass(0, segments, residency(10, 10, 15.0, False), 64)
    assert stage_pass.duration_s == pytest.approx(34 * US)  # 10 + max(4, 3) + 5 + 6 + 2 + 7
    assert stage_pass.compute_s == pytest.approx(15 * US)
    assert stage_pass.exposed_allreduce_s == pytest.approx(19 * US)
    assert stage_pass.allreduce_s == pytest.approx(22 * US)
    assert stage_pass.allreduce_count == 4
    assert stage_pass.allreduce_bytes_sent == 111.0
    assert [op.name for op in stage_pass.ops] == ["a", "b", "c"]
    assert stage_pass.total("compute_s") == pytest.approx(12 * US)  # kernels of 9 + 2 + 1 us
    assert compile_steps((_segment(ALLREDUCE, "r", 4),))[0].compute is None


def test_the_correction_memo_keeps_sizes_apart():
    # one GEMM shape measured at 1 row (ratio 2), 2 rows (ratio 4) and 3 rows (ratio 8)
    gemm = build_table([(gemm_features(16, 8), 0.0, 2.0), (gemm_features(16, 8), math.log(2), 4.0),
                        (gemm_features(16, 8), math.log(3), 8.0)], lambda i: 1.0)
    cost = CostModel(params=P, cuda_graphs=True, gemm_table=gemm)
    prices = PriceMemo()
    # compute-bound under P: 1 row 256 FLOP at 1e6 x 0.5 x 1/4 = 2048 us; 2 rows 512 FLOP at x 2/4 = 2048 us;
    # 3 rows 768 FLOP at x 3/4 = 2048 us
    one, two, three = (op_cost(GEMM, _tokens(rows), cost, 0.0, prices) for rows in (1, 2, 3))
    assert [one.time_s, two.time_s, three.time_s] == pytest.approx(
        [(2 * 2048 + 19) * US, (4 * 2048 + 19) * US, (8 * 2048 + 19) * US], rel=1e-12)


def test_eager_launches_of_short_kernels_run_at_the_host_rate():
    # three 1-kernel operators of 1 us each, issued at 10, 20 and 30 us: each waits for its issue
    ops = overlap_eager_launches((_kernel("a", 1), _kernel("b", 1), _kernel("c", 1)), 10 * US)
    assert [op.launch_s / US for op in ops] == pytest.approx([10, 9, 9], abs=1e-9)


def test_ties_between_arithmetic_and_memory_go_to_arithmetic():
    # powers of two, so the sums are exact. GEMM, 1 token, (8 x 16): 256 FLOP at 2^20 x 0.5 = 2^-11 s;
    # 256 B of weights at 2^20 B/s (2^-12 s) + 48 B of activations at 196608 B/s (2^-12 s): a tie
    gemm_tie = replace(P, peak_flops_per_s=2.0 ** 20, gemm_min_rows=1.0, gemm_latency_s=0.0, gemm_bw_efficiency=1.0,
                       hbm_read_bw_bytes_per_s=2.0 ** 20, hbm_bw_bytes_per_s=196608.0, hbm_efficiency=1.0)
    cost = op_cost(GEMM, _tokens(1), CostModel(params=gemm_tie, cuda_graphs=True), 0.0)
    assert (cost.compute_s, cost.weights_s, cost.activations_s) == (2.0 ** -11, 0.0, 0.0)
    # decode attention of context 8: 256 FLOP at 2^20 x 0.25 = 2^-10 s; 128 B of cache at 2^18 B/s and
    # 32 B of Q and O at 2^16 B/s, 2^-11 s each
    decode_tie = replace(P, peak_flops_per_s=2.0 ** 20, attention_latency_s=0.0, attention_bw_efficiency=1.0,
                         hbm_read_bw_bytes_per_s=2.0 ** 18, hbm_bw_bytes_per_s=2.0 ** 16, hbm_efficiency=1.0)
    cost = op_cost(ATTENTION, _tokens(1, 1, 8), CostModel(params=decode_tie, cuda_graphs=True), 0.0)
    assert (cost.compute_s, cost.activations_s) == (2.0 ** -10, 0.0)
    # prefill of 4 of 8: 832 FLOP at 3328 x 2^12 x 0.25 = 2^-12 s; 128 B of cache and 128 B of Q and O at
    # 2^20 B/s, 2^-13 s each; scaled x 3
    prefill_tie = replace(P, peak_flops_per_s=3328.0 * 2 ** 12, attention_latency_s=0.0, attention_bw_efficiency=1.0,
                          hbm_read_bw_bytes_per_s=2.0 ** 20, hbm_bw_bytes_per_s=2.0 ** 20, hbm_efficiency=1.0)
    cost = op_cost(ATTENTION, _tokens(1, 4, 8), CostModel(params=prefill_tie, cuda_graphs=True), 0.0)
    assert (cost.compute_s, cost.activations_s) == (3 * 2.0 ** -12, 0.0)


def test_prefill_attention_between_the_memory_terms_is_memory_bound():
    # 832 FLOP at 8e6 x 0.25 = 416 us: above the cache's 512 - the activations' 256 us, below their sum (768)
    cost = op_cost(ATTENTION, _tokens(1, 4, 8), CostModel(params=replace(P, peak_flops_per_s=8e6), cuda_graphs=True),
                   0.0)
    _check(cost, time_s=(1551 + 768 + 154 + 57) * US, compute_s=0.0)


def test_shape_features():
    assert gemm_features(1, 8) == (0.0, math.log(8))
    assert attention_features(3, 2, 1) == (0.0, 0.0)  # 3 // 2 = 1 query head a KV head; head_dim 1
    assert attention_features(2, 2, 4) == (0.0, math.log(4))
    assert attention_features(8, 2, 4) == (0.5 * math.log(4), math.log(4))


def test_fit_affine_refuses_a_negative_latency():
    # time = -1 us + bytes x 1 us/B: a negative latency
    assert fit_affine([10.0, 20.0, 30.0], [9e-6, 19e-6, 29e-6]) is None
    fitted = fit_affine([10.0, 20.0, 30.0], [11e-6, 21e-6, 31e-6])  # 1 us + 1 us/B
    assert fitted is not None and fitted == pytest.approx((1e-6, 1e6), rel=1e-9)


def test_built_pieces_are_made_once_and_the_oldest_goes_first(fresh_memo):
    made: list[int] = []

    def make(i: int) -> int:
        made.append(i)
        return i

    for i in range(memo.BUILT_KEPT + 1):
        memo.built(("piece", i), partial(make, i))
    assert memo.built(("piece", memo.BUILT_KEPT), lambda: -1) == memo.BUILT_KEPT  # remembered, not made again
    assert made == list(range(memo.BUILT_KEPT + 1))
    assert len(memo._BUILT) == memo.BUILT_KEPT and ("piece", 0) not in memo._BUILT and ("piece", 1) in memo._BUILT


def test_cost_models_without_a_profile_and_of_two_profiles(fresh_memo):
    assert build_cost_model(TWO_NODES, None, False) == CostModel(params=datasheet_params(TWO_NODES), cuda_graphs=False)
    fit = CollectiveFit(op="allreduce", group_size=4, latency_s=20e-6, bw_bytes_per_s=1e6)
    given = {name: getattr(P, name) for name in FITTABLE_PARAMS if name not in BASE_NAMES}
    first = build_cost_model(TWO_NODES, HardwareProfile("x", 1, ProfileParams(
        gemm_points=FIT_GEMMS, attention_points=FIT_ATTENTION, sim_params=given, collectives=(fit,)),
        raw={"gemm": {"dtype": "float32"}}), cuda_graphs=False)
    assert first.collectives == (fit,) and first.measured_dtype_bytes == 4
    # a second profile, its GEMMs at 3 us + 1 us/B (a share of 1): its own base and tables, not the first's
    slower = tuple(GemmPoint(p.m, p.n, p.k, 19 * US + 3 * US + (p.time_s - 23 * US) / 2) for p in FIT_GEMMS[:4])
    second = build_cost_model(TWO_NODES, HardwareProfile("x", 1, ProfileParams(
        gemm_points=slower, attention_points=FIT_ATTENTION, sim_params=given)), cuda_graphs=True)
    assert (second.params.gemm_latency_s, second.params.gemm_bw_efficiency) == pytest.approx((3 * US, 1.0), rel=1e-6)
    assert list(second.gemm_table.curves[0].log_ratios) != list(first.gemm_table.curves[0].log_ratios)


def test_a_collective_fit_is_for_its_op_and_group_size_only():
    fits = (CollectiveFit(op="allreduce", group_size=4, latency_s=20e-6, bw_bytes_per_s=1e6),
            CollectiveFit(op="sendrecv", group_size=2, latency_s=4e-6, bw_bytes_per_s=2e6))
    cost = CostModel(params=P, cuda_graphs=False, collectives=fits)
    assert cost.collective_fit("allreduce", 2) is None and cost.collective_fit("sendrecv", 4) is None
    assert cost.collective_fit("allreduce", 4) is fits[0]


def test_hierarchical_allreduce_over_three_nodes():
    # h100x64 (8 GPUs a node): 2 ranks on node 0, 1 on node 1, 1 on node 2; per node 2, shard 3000 B.
    # latency 10 + 2 x 1 x 2 + 2 x 2 x 7 = 42 us; intra 2 x 1/2 x 6000 = 6000 B at 4 us/B = 24000 us;
    # inter 2 x 2/3 x 3000 = 4000 B at 20 us/B = 80000 us
    pod = load_cluster("h100x64")
    ring = allreduce_cost(6000, ("gpu6", "gpu7", "gpu8", "gpu16"), pod, GRAPH)
    assert (ring.latency_s, ring.serialization_s, ring.bytes_sent_per_rank) == pytest.approx(
        (42 * US, 104000 * US, 10000.0), rel=1e-12)


def test_a_correction_between_measured_shapes_is_their_weighted_mean_shrunk_to_the_base():
    # two curves 0.35 (one SHAPE_SCALE) from the query along the first feature: each weighs
    # exp(-0.35^2 / (2 x 0.35^2)) = exp(-1/2) = 0.6065306597; curve A at log size 1 interpolates its log ratios
    # 1 and 3 at 0 and 2: 2; curve B holds 0.25. Log ratio 0.6065306597 x 2.25 / (2 x 0.6065306597 + 0.1)
    # = 1.0393223562, ratio 2.8273004625.
    near = KernelTable((ShapeCurve((0.0, 0.0), np.array([0.0, 2.0]), np.array([1.0, 3.0])),
                        ShapeCurve((0.7, 0.0), np.array([0.0]), np.array([0.25]))))
    found = near.correction((0.35, 0.0), 1.0)
    assert (found.ratio, found.weight) == pytest.approx((2.8273004625, 0.6065306597), rel=1e-9)
    # one curve along the second feature, 0.35 below the query: log ratio 0.6065306597 / 0.7065306597
    one = KernelTable((ShapeCurve((1.0, 0.0), np.array([0.0]), np.array([1.0])),)).correction((1.0, 0.35), 5.0)
    assert (one.ratio, one.weight) == pytest.approx((2.3595320737, 0.6065306597), rel=1e-9)
    # on a measured shape: the curve itself, full weight
    assert near.correction((0.0, 0.0), 1.0) == Correction(math.exp(2.0), 1.0)
    assert KernelTable().correction((0.0, 0.0), 1.0) == Correction(1.0, 0.0)


def test_a_plan_counted_shared_memory_only_when_cache_fit_said_so():
    def plan(partitioner: str, capacity: int | None) -> Plan:
        return cast(Plan, SimpleNamespace(partitioner=partitioner, fit_capacity_bytes=capacity,
                                          device_l2_usable_bytes=100, device_sram_bytes=30))

    assert plan_counts_sram(plan("cache-fit", 30)) and plan_counts_sram(plan("cache-fit", 130))
    assert not plan_counts_sram(plan("cache-fit", 100)) and not plan_counts_sram(plan("cache-fit", 70))
    assert not plan_counts_sram(plan("tp-pp", 30)) and not plan_counts_sram(plan("min-max-bytes", None))


# ------------------------------------------------------------------------------------ stage passes

STAGE_PARAMS = {"peak_flops_per_s": 1e5, "compute_efficiency": 1.0, "attention_efficiency": 1.0, "gemm_min_rows": 1.0,
                "launch_overhead_graph_s": 10e-6, "launch_overhead_eager_s": 10e-6, "tp_straggler_fraction": 0.1,
                "l2_bw_bytes_per_s": 1e6}


def _toy_pass(block: str, layers: int, context: int, priced: PriceMemo | None = None, named: bool = True,
              sram_counted: bool = False) -> StagePass:
    experiment = toy_experiment({"tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1, "microbatches": 1}},
                                workload={"cuda_graphs": True}, model={"block": block, "num_layers": layers})
    inputs = resolve_given(experiment, "tp2", toy_profile(**STAGE_PARAMS))
    pass_layout.cache_clear()  # memoized across tests: work the layout out here
    return stage_pass(experiment.model, inputs.plan.stages[0], TokenShape(1, 1, context), experiment.cluster,
                      inputs.basis.cost, sram_counted=sram_counted, priced=priced, named=named)


def _segments(stage_pass_: StagePass) -> list[tuple[str, str, float, bool]]:
    return [(s.kind, s.label, round(s.duration_s / US, 6), s.overlaps_collective) for s in stage_pass_.segments]


def test_a_sequential_stage_pass_at_tp_2_with_a_straggler_wait():
    # The toy model (sim_toy.py) at TP 2 under STAGE_PARAMS: 1e5 FLOP/s, 1 byte = 1 us, 10 us a launch (the
    # hand-worked decode of test_sim_hand_worked.py, per device): attn_norm 24 + 10, qkv 480 + 10, attention
    # 320 + 8 B appended + 3 x 10, o_proj 160 + 10 = 1052 us. Each all-reduce of 8 B: 2 x 1 x 1 us of ring
    # latency, 8 B at 8e6 B/s (1 us), plus 0.1 of the compute before it (the straggler): 108.2 us.
    # attn_residual 34, mlp_norm 34, gate_up 330, act 16 + 10, down 330 = 754 us; all-reduce 3 + 75.4 = 78.4 us.
    sequential = _toy_pass("sequential", 2, 4)
    assert _segments(sequential) == [
        (COMPUTE, "L0.attn_norm..L0.o_proj", 1052.0, False), (ALLREDUCE, "L0.attn_allreduce", 108.2, False),
        (COMPUTE, "L0.attn_residual..L0.down", 754.0, False), (ALLREDUCE, "L0.mlp_allreduce", 78.4, False),
        (COMPUTE, "L0.mlp_residual..L1.o_proj", 1086.0, False), (ALLREDUCE, "L1.attn_allreduce", 111.6, False),
        (COMPUTE, "L1.attn_residual..L1.down", 754.0, False), (ALLREDUCE, "L1.mlp_allreduce", 78.4, False),
        (COMPUTE, "L1.mlp_residual", 34.0, False)]
    assert [op.name for op in sequential.segments[0].ops] == ["L0.attn_norm", "L0.qkv", "L0.attention", "L0.o_proj"]
    assert [round(op.time_s / US, 6) for op in sequential.segments[0].ops] == [34.0, 490.0, 358.0, 170.0]
    assert sequential.output_bytes == 8 and sequential.stage == 0  # 1 token x hidden 4 x 2 bytes
    assert sequential.segments[1].comm is not None and sequential.segments[1].comm.latency_s == pytest.approx(
        107.2 * US, rel=1e-12)
    # without a shared L2 the weights do not stay: usable L2 of 1 byte
    assert (sequential.residency.capacity_bytes, sequential.residency.hit_fraction) == (1.0, 0.0)


def test_a_parallel_block_overlaps_its_mlp_with_the_attention_all_reduce():
    # one parallel layer: norm 24 + 10, qkv 490, attention 358, o_proj 170 = 1052 us; all-reduce 108.2 us
    # beside gate_up 330, act 26, down 330 = 686 us (the MLP does not need it); the MLP all-reduce
    # 3 + 68.6 = 71.6 us, then the three-term residual: 4 x 4 x 2 = 32 B + 2 launches = 52 us.
    # Steps: 1052 + max(108.2, 686) + 71.6 + 52 = 1861.6 us.
    # Shared memory counted: C = 1 B + 132 SMs x 233,472 B; the weights (136 B a device) stay; the pass streams
    # 136 B of activations and 32 + 8 B of KV cache.
    parallel = _toy_pass("parallel", 1, 4, named=False, sram_counted=True)
    assert _segments(parallel) == [
        (COMPUTE, "L0.norm..L0.o_proj", 1052.0, False), (ALLREDUCE, "L0.attn_allreduce", 108.2, False),
        (COMPUTE, "L0.gate_up..L0.gate_up", 686.0, True), (ALLREDUCE, "L0.mlp_allreduce", 71.6, False),
        (COMPUTE, "L0.residual", 52.0, False)]  # named=False: down shares gate_up's price record, and its name
    assert parallel.duration_s == pytest.approx(1861.6 * US, rel=1e-12)
    res = parallel.residency
    assert (res.weights_bytes, res.streamed_bytes_per_pass, res.capacity_bytes, res.sram_counted, res.hit_fraction) == (
        136, 176, 1.0 + 132 * 233472, True, 1.0)


def test_passes_sharing_a_price_memo_reprice_only_what_reads_the_context():
    prices = PriceMemo()
    short = _toy_pass("parallel", 1, 4, priced=prices)
    priced_ops = len(prices.ops)
    # context 8: attention 4 x 1 x 1 x 2 x 8 = 64 FLOP = 640 us (+320 us); the all-reduce after it waits 32 us more
    long = _toy_pass("parallel", 1, 8, priced=prices)
    assert [round(s.duration_s / US, 6) for s in long.segments] == [1372.0, 140.2, 686.0, 71.6, 52.0]
    assert long.segments[2] is short.segments[2]  # the MLP run is the same at every context length
    assert len(prices.ops) == priced_ops + 1  # one price more: the attention at context 8
    assert [op.name for op in long.segments[2].ops] == ["L0.gate_up", "L0.act", "L0.down"]


def _toy(tp: int, pp: int, cuda_graphs: bool = True) -> tuple[Experiment, Plan, CostModel]:
    experiment = toy_experiment({"p": {"partitioner": "tp-pp", "tp": tp, "pp": pp, "microbatches": 1}},
                                workload={"cuda_graphs": cuda_graphs})
    inputs = resolve_given(experiment, "p", toy_profile(**STAGE_PARAMS))
    pass_layout.cache_clear()
    return experiment, inputs.plan, inputs.basis.cost


def test_the_second_stage_of_two_prices_its_own_layer_with_the_defaults():
    # PP 2, TP 1: stage 1 is layer L1 alone, one compute run of 3344 us of kernels + 12 launches x 10 us
    # (test_sim_hand_worked.py). Its pass streams 224 B of activations (16 + 32 + 16 + 16 + 24 + 16 + 24 + 32
    # + 24 + 24), 64 B of KV read and 16 B appended; shared memory not counted: C is the 1 byte of L2.
    experiment, plan, cost = _toy(1, 2)
    second = stage_pass(experiment.model, plan.stages[1], TokenShape(1, 1, 4), experiment.cluster, cost)
    assert _segments(second) == [(COMPUTE, "L1.attn_norm..L1.mlp_residual", 3464.0, False)]
    assert (second.stage, second.residency.streamed_bytes_per_pass, second.residency.capacity_bytes) == (1, 304, 1.0)
    # the activations of one layer at 1 and 2 tokens, remembered apart in one memo (KV: 64 + 16 B, then 128 + 32)
    ops, _ = stage_ops(experiment.model, plan.stages[1])
    prices = PriceMemo()
    streamed = [stage_residency(experiment.model, plan.stages[1], ops, TokenShape(batch, 1, 4), experiment.cluster,
                                cost, False, memo_).streamed_bytes_per_pass
                for batch, memo_ in ((1, prices), (2, prices), (2, None))]
    assert streamed == [304, 608, 608]


def test_unnamed_runs_share_one_price_record_per_shape():
    # the sequential toy at TP 2 with named=False: layer 1's MLP run is layer 0's record; the last run
    # (mlp_residual alone, 34 us) is another shape
    unnamed = _toy_pass("sequential", 2, 4, named=False)
    assert [round(s.duration_s / US, 6) for s in unnamed.segments][-1] == 34.0
    assert unnamed.segments[6] is unnamed.segments[2]
    # at TP 2 down is (4 x 4) like gate_up: its record is gate_up's, name included
    assert unnamed.segments[6].label == "L0.attn_residual..L0.gate_up"


def test_an_eager_stage_pass_waits_for_the_host_only_at_the_start_of_each_run():
    # eager, 10 us of host time a kernel: every kernel runs >= 16 us, so each compute run waits for its first
    # kernel's issue alone: its kernels plus 10 us. First run: 24 + 480 + 328 (attention and the two appends)
    # + 160 = 992 us + 10; the all-reduce waits 0.1 of that: 3 + 100.2 us.
    experiment, plan, cost = _toy(2, 1, cuda_graphs=False)
    eager = stage_pass(experiment.model, plan.stages[0], TokenShape(1, 1, 4), experiment.cluster, cost)
    # second run: 24 + 24 + 320 + 16 + 320 = 704 us + 10; the last: mlp_residual 24 + 10
    assert [round(s.duration_s / US, 6) for s in eager.segments][:4] == [1002.0, 103.2, 714.0, 74.4]
    assert round(eager.segments[-1].duration_s / US, 6) == 34.0
    assert [round(op.launch_s / US, 6) for op in eager.segments[0].ops] == [10.0, 0.0, 0.0, 0.0]
