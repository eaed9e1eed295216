"""Hand-worked timelines where arithmetic costs time: finite FLOP/s (compute-bound GEMMs and
attention), a launch cost per kernel, an all-reduce and a send across nodes, and a prefill's
time to first token. Every expected number is worked below from the toy model's operators.

Parameters (``FINITE``): peak 1e5 FLOP/s at efficiency 1 for GEMMs (``gemm_min_rows`` 1) and
attention; HBM 1e6 B/s (1 byte = 1 us); no L2; no fixed kernel latencies; 10 us per kernel launch;
across nodes a NIC of 4e6 B/s with 5 us latency. A kernel takes max(FLOPs / 1e5, bytes / 1e6) plus
its launch; attention is three kernels: its own, then the two copies appending K and V (16 B here).

Decode, 1 sequence, context 4 (T = 1 token), per layer on one device, TP 1:
    attn_norm   24 B                                          24 us
    qkv         2x1x4x12 = 96 FLOP -> 960 us (128 B)          960
    attention   4x1x2x2x4 = 64 FLOP -> 640 us (80 B read)     640 + 16 (K, V appended) = 656
    o_proj      2x1x4x4 = 32 FLOP                             320
    attn_res    24 B                                           24
    mlp_norm    24 B                                           24
    gate_up     2x1x4x8 = 64 FLOP                             640
    act (GELU)  32 B                                           32
    down        2x1x8x4 = 64 FLOP                             640
    mlp_res     24 B                                           24
  = 3344 us of kernels + 12 launches x 10 us = 3464 us.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sim_toy import toy_profile

from sim.resolve import resolve_given
from sim.simulate import estimate, simulate
from topology.experiment import build_plan
from topology.plan import Plan

US = 1e-6
FINITE = {"peak_flops_per_s": 1e5, "compute_efficiency": 1.0, "attention_efficiency": 1.0, "gemm_min_rows": 1.0,
          "launch_overhead_graph_s": 10e-6, "launch_overhead_eager_s": 10e-6,
          "inter_node_bw_bytes_per_s": 4e6, "inter_node_latency_s": 5e-6}
TWO_NODES = {"name": "toy2x1", "nodes": 2, "gpus_per_node": 1, "gpu": "h100-sxm", "intra_node_link": "nvlink4",
             "inter_node_link": "ib-ndr-400"}
LAYER_DECODE_US = 3464.0


def _both(experiment, plan: str, given: Plan | None = None) -> tuple[float, float]:
    events = simulate(resolve_given(experiment, given or plan, toy_profile(**FINITE)))
    twin = estimate(resolve_given(experiment, given or plan, toy_profile(**FINITE)))
    return events.metrics.step_time_s, twin.metrics.step_time_s


def test_compute_bound_kernels_with_graph_launches(make_experiment):
    experiment = make_experiment({"one": {"partitioner": "tp-pp", "tp": 1, "pp": 1, "microbatches": 1}},
                                 workload={"cuda_graphs": True})
    events, twin = _both(experiment, "one")
    assert events == pytest.approx(2 * LAYER_DECODE_US * US, rel=1e-12)  # two layers: 6928 us
    assert twin == pytest.approx(2 * LAYER_DECODE_US * US, rel=1e-12)
    result = simulate(resolve_given(experiment, "one", toy_profile(**FINITE)))
    assert result.metrics.simulation is not None
    parts = result.metrics.simulation.breakdown
    # compute-bound: 960 + 640 + 320 + 640 + 640 = 3200 us per layer; memory-bound elementwise: 128 us;
    # the cache appends 16 us
    assert parts.compute_s == pytest.approx(2 * 3200 * US, rel=1e-12)
    assert parts.activations_s + parts.weights_s == pytest.approx(2 * 128 * US, rel=1e-12)
    assert parts.kv_cache_s == pytest.approx(2 * 16 * US, rel=1e-12)
    assert parts.launch_s == pytest.approx(2 * 120 * US, rel=1e-12)


def test_eager_launches_hide_behind_long_kernels(make_experiment):
    # The host issues kernel i at (i + 1) x 10 us; every operator runs >= 24 us, so the GPU waits
    # only for the first: one segment (no all-reduce at TP 1) of 20 operators, 24 kernels = 6688 + 10 us.
    experiment = make_experiment({"one": {"partitioner": "tp-pp", "tp": 1, "pp": 1, "microbatches": 1}},
                                 workload={"cuda_graphs": False})
    events, twin = _both(experiment, "one")
    assert events == pytest.approx(6698 * US, rel=1e-12)
    assert twin == pytest.approx(6698 * US, rel=1e-12)


def test_an_all_reduce_across_nodes(make_experiment):
    # TP 2 over two nodes of one GPU each, per device per layer: attn_norm 24, qkv 2x4x6 = 48 FLOP 480,
    # attention 4x1x1x2x4 = 32 FLOP 320 + 8 B appended, o_proj 2x2x4 = 16 FLOP 160, attn_res 24, mlp_norm 24,
    # gate_up 2x4x4 = 32 FLOP 320, act 2x4x2 = 16 B 16, down 320, mlp_res 24: 1720 us + 120 us launches.
    # Each all-reduce of 8 bytes is hierarchical with one GPU per node: no intra-node part,
    # 2(N-1) = 2 NIC latencies (10 us) + 2(N-1)/N x 8 B / 4e6 B/s = 2 us: 12 us, two per layer.
    # (the partitioners keep TP groups inside a node; a plan file may not: build it on one node)
    one_node = make_experiment({"tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1, "microbatches": 1}},
                               workload={"cuda_graphs": True})
    plan = replace(build_plan(one_node, "tp2"), cluster_name="toy2x1")
    experiment = make_experiment({"tp2": {"partitioner": "tp-pp", "tp": 1, "pp": 1, "microbatches": 1}},
                                 workload={"cuda_graphs": True}, cluster=TWO_NODES)
    assert {experiment.cluster.node_of(d) for d in plan.stages[0].devices} == {0, 1}
    events, twin = _both(experiment, "tp2", plan)
    assert events == pytest.approx(2 * (1840 + 24) * US, rel=1e-12)
    assert twin == pytest.approx(2 * (1840 + 24) * US, rel=1e-12)


def test_a_send_across_nodes_in_a_closed_loop(make_experiment):
    # Two stages of one layer each on two nodes; a send of 1 x 4 x 2 = 8 bytes crosses the NIC:
    # 5 us + 8 B / 4e6 B/s = 7 us, forward and back: step = 2 x (3464 + 7) = 6942 us. With two
    # microbatches of one sequence the pipeline is just full: max(cycle 6942, 2 x 3471) = 6942 us.
    for microbatches, batch in ((1, 1), (2, 2)):
        experiment = make_experiment(
            {"pp2": {"partitioner": "tp-pp", "tp": 1, "pp": 2, "microbatches": microbatches}},
            workload={"cuda_graphs": True, "batch_size": batch}, cluster=TWO_NODES)
        events, twin = _both(experiment, "pp2")
        assert events == pytest.approx(6942 * US, rel=1e-12)
        assert twin == pytest.approx(6942 * US, rel=1e-12)


def test_prefill_time_to_first_token(make_experiment):
    # Prefill of 2 prompts of 4 tokens as 2 microbatches of 1 over two stages on two nodes.
    # One layer pass at T = 4 tokens: attn_norm 72 B 72, qkv 2x4x4x12 = 384 FLOP 3840,
    # attention 4x1x2x2x10 pairs = 160 FLOP 1600 + 64 B appended 64, o_proj 2x4x4x4 = 128 FLOP 1280,
    # attn_res 96 B 96, mlp_norm 72, gate_up 2x4x4x8 = 256 FLOP 2560, act 128 B 128, down 2560, mlp_res 96:
    # 12368 us + 120 us launches = 12488 us. The send: 4 x 4 x 2 = 32 B: 5 + 8 = 13 us.
    # Flow shop: microbatch 0 leaves at 12488 + 13 + 12488 = 24989 us, microbatch 1 one
    # bottleneck (12501 us) later, 37490 us: the step; TTFT = the mean, 31239.5 us.
    experiment = make_experiment(
        {"pp2": {"partitioner": "tp-pp", "tp": 1, "pp": 2, "microbatches": 2}},
        workload={"phase": "prefill", "batch_size": 2, "prompt_len": 4, "context_len": 4, "cuda_graphs": True},
        cluster=TWO_NODES)
    for run in (simulate, estimate):
        metrics = run(resolve_given(experiment, "pp2", toy_profile(**FINITE))).metrics
        assert metrics.step_time_s == pytest.approx(37490 * US, rel=1e-12)
        assert metrics.ttft_s == pytest.approx(31239.5 * US, rel=1e-12)
        assert metrics.tokens_per_s == pytest.approx(8 / (37490 * US), rel=1e-12)
