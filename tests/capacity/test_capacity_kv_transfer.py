"""The KV transfer of a disaggregated deployment, worked by hand from the data files' link numbers.

tiny-test: 4 layers, 2 KV heads of 16 dims, 4-byte values: one head of one layer is 2 x 16 x 4 = 128
bytes per token (K and V); a whole token is 4 x 2 x 128 = 1024 bytes. Link numbers (links.yaml,
cluster files): NVLink 4 at 450e9 B/s per direction, 2 us; a cross-node message over the 400 Gb/s
NICs at 50e9 B/s, 5 us (``inter_node_latency_s``); without a profile, messages reach the default
``link_efficiency`` 0.8 of a link's bandwidth (sim/params.py).
"""

from __future__ import annotations

import pytest

from sim.capacity.kv_transfer import kv_bytes_per_token, kv_transfer_time_s, place_replicas, placed_pricer, pool_order
from sim.costs.build import build_cost_model
from topology.cluster import load_cluster
from topology.experiment import load_experiment
from topology.model import load_model
from topology.partition.space import Layout, plan_of_layout
from topology.plan import Plan

NVLINK_BW, NIC_BW = 0.8 * 450.0e9, 0.8 * 50.0e9
NVLINK_LATENCY_S, NIC_LATENCY_S = 2.0e-6, 5.0e-6


def _plan(tp: int, cluster_name: str) -> Plan:
    model, cluster = load_model("tiny-test"), load_cluster(cluster_name)
    workload = load_experiment("tiny-cpu").workload
    return plan_of_layout(Layout(1, (model.num_layers,), (tp,), (0,)), model, cluster, workload, "test")


def test_same_node_tp1_to_tp1_is_one_nvlink_message() -> None:
    cluster, model = load_cluster("h100x2"), load_model("tiny-test")
    plan = _plan(1, "h100x2")
    assert place_replicas([plan, plan], cluster) == [0, 1]  # prefill 0 on gpu0, decode 0 on gpu1
    per_token = kv_bytes_per_token(plan, 0, plan, 1, model, cluster)
    assert per_token == {("gpu0", "gpu1"): 1024}
    cost = build_cost_model(cluster, None, False)
    assert kv_transfer_time_s(per_token, 100, cluster, cost) == pytest.approx(NVLINK_LATENCY_S + 102_400 / NVLINK_BW,
                                                                             rel=1e-12)
    pricer = placed_pricer(plan, 1, plan, 1, model, cluster, cost)
    assert pricer(100, 0, 0) == pytest.approx(NVLINK_LATENCY_S + 102_400 / NVLINK_BW, rel=1e-12)


def test_tp2_to_tp2_across_nodes_is_two_nic_messages_at_once() -> None:
    # 4 prefill + 1 decode TP2 replicas on two 8-GPU nodes: P0 gpu0-1, D0 gpu2-3, P1 gpu4-5, P2 gpu6-7,
    # P3 gpu8-9, so P3 -> D0 crosses the NICs. Rank r of a TP2 stage holds KV head r: two messages (rank r
    # to rank r) of 4 layers x 128 B = 512 B a token, each on its own GPU's NIC, so they overlap.
    cluster, model = load_cluster("seed-16xh100"), load_model("tiny-test")
    plan = _plan(2, "seed-16xh100")
    cost = build_cost_model(cluster, None, False)
    pricer = placed_pricer(plan, 4, plan, 1, model, cluster, cost)
    assert (pricer.prefill_offsets, pricer.decode_offsets) == ([0, 4, 6, 8], [2])
    assert kv_bytes_per_token(plan, 8, plan, 2, model, cluster) == {("gpu8", "gpu2"): 512, ("gpu9", "gpu3"): 512}
    assert pricer(1000, 3, 0) == pytest.approx(NIC_LATENCY_S + 512_000 / NIC_BW, rel=1e-12)
    assert pricer(1000, 0, 0) == pytest.approx(NVLINK_LATENCY_S + 512_000 / NVLINK_BW, rel=1e-12)  # same node


def test_tp1_to_tp2_sends_each_head_to_the_rank_that_holds_it() -> None:
    # Decode TP2: rank 0 holds head 0, rank 1 head 1 (512 B a token each), both from the one prefill GPU,
    # whose port sends one message after the other: the second ends at 2 x (2 us + 512 N / bw).
    cluster, model = load_cluster("h100x4"), load_model("tiny-test")
    source, target = _plan(1, "h100x4"), _plan(2, "h100x4")
    assert place_replicas([source, target], cluster) == [0, 1]
    per_token = kv_bytes_per_token(source, 0, target, 1, model, cluster)
    assert per_token == {("gpu0", "gpu1"): 512, ("gpu0", "gpu2"): 512}
    cost = build_cost_model(cluster, None, False)
    one_s = 512 * 10 / NVLINK_BW
    assert kv_transfer_time_s(per_token, 10, cluster, cost) == pytest.approx(2 * one_s + NVLINK_LATENCY_S, rel=1e-9)


def test_placement_keeps_a_replica_inside_a_node_and_interleaves_the_pools() -> None:
    cluster = load_cluster("seed-16xh100")
    assert pool_order(2, 1) == [("prefill", 0), ("decode", 0), ("prefill", 1)]
    tp1, tp2 = _plan(1, "seed-16xh100"), _plan(2, "seed-16xh100")
    assert place_replicas([tp2, tp2, tp2, tp1, tp2], cluster) == [0, 2, 4, 6, 8]  # the last would straddle gpu7-8
    assert place_replicas([tp2, tp2, tp2], cluster) == [0, 2, 4]
