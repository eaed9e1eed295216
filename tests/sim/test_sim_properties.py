"""Properties of the simulator: monotone in bandwidth, L2 residency, bubbles, conservation, twin agreement."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_toy import toy_experiment, toy_profile

from sim.resolve import resolve_given
from sim.simulate import estimate, simulate
from topology.partition.assemble import StageSpec, assemble_plan

PP2 = {"pp2": {"partitioner": "tp-pp", "tp": 1, "pp": 2, "microbatches": 2}}
WORKLOAD = {"batch_size": 4, "context_len": 64, "warmup_iters": 2, "measured_iters": 4}


@settings(max_examples=15, deadline=None)
@given(hbm=st.floats(1.0, 8.0), link=st.floats(1.0, 8.0), l2=st.floats(1.0, 8.0))
def test_more_bandwidth_is_never_slower(hbm, link, l2):
    experiment = toy_experiment(PP2, workload=WORKLOAD)
    slow = simulate(resolve_given(experiment, "pp2", toy_profile(l2_usable_bytes=1e9, l2_bw_bytes_per_s=2e6)))
    fast = simulate(resolve_given(experiment, "pp2", toy_profile(
        l2_usable_bytes=1e9, l2_bw_bytes_per_s=2e6 * l2, hbm_bw_bytes_per_s=1e6 * hbm,
        intra_node_bw_bytes_per_s=8e6 * link)))
    assert fast.metrics.step_time_s <= slow.metrics.step_time_s * (1 + 1e-12)


def test_weights_that_fit_in_l2_read_fewer_hbm_bytes(make_experiment):
    experiment = make_experiment(PP2, workload=WORKLOAD)
    cold = simulate(resolve_given(experiment, "pp2", toy_profile(l2_usable_bytes=1.0)))
    hot = simulate(resolve_given(experiment, "pp2", toy_profile(l2_usable_bytes=1e9, l2_bw_bytes_per_s=4e6)))
    cold_sim, hot_sim = cold.metrics.simulation, hot.metrics.simulation
    assert cold_sim is not None and hot_sim is not None
    for c, h in zip(cold_sim.devices, hot_sim.devices, strict=True):
        assert h.hbm_bytes_per_iteration < c.hbm_bytes_per_iteration
        assert c.l2_bytes_per_iteration == 0 and h.l2_bytes_per_iteration > 0
        assert h.l2_hit_fraction == pytest.approx(1.0)
    assert [d.device for d in hot_sim.devices] == ["gpu0", "gpu1"]
    assert hot.metrics.step_time_s < cold.metrics.step_time_s
    assert [e.fit for e in hot_sim.residency] == ["full", "full"]
    assert [e.fit for e in cold_sim.residency] == ["none", "none"]


def test_one_microbatch_through_k_stages_is_k_times_slower_per_token(make_experiment):
    # Balanced stages (one layer each), stage time proportional to microbatch size (weights free:
    # resident in an infinitely fast L2; launches free), communication free.
    free = toy_profile(l2_usable_bytes=1e12, l2_bw_bytes_per_s=1e30, p2p_latency_s=0.0,
                       intra_node_bw_bytes_per_s=1e30)
    k = 2
    one = make_experiment({"p": {"partitioner": "tp-pp", "tp": 1, "pp": k, "microbatches": 1}}, workload=WORKLOAD)
    many = make_experiment({"p": {"partitioner": "tp-pp", "tp": 1, "pp": k, "microbatches": k}}, workload=WORKLOAD)
    slow = simulate(resolve_given(one, "p", free)).metrics
    fast = simulate(resolve_given(many, "p", free)).metrics
    assert slow.tpot_s / fast.tpot_s == pytest.approx(k, rel=1e-9)
    assert slow.breakdown is not None
    assert slow.breakdown.bubble_s == pytest.approx(slow.step_time_s * (k - 1) / k, rel=1e-9)


def test_bytes_sent_equal_bytes_received(make_experiment):
    experiment = make_experiment({"tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1, "microbatches": 1},
                                  "pp2": PP2["pp2"]}, workload=WORKLOAD)
    for name in ("tp2", "pp2"):
        simulation = simulate(resolve_given(experiment, name, toy_profile())).metrics.simulation
        assert simulation is not None
        comm = simulation.communication
        assert comm.bytes_sent_total > 0
        assert comm.bytes_sent_total == pytest.approx(comm.bytes_received_total, rel=1e-12)


def test_event_simulation_equals_analytic_twin_without_contention(make_experiment):
    experiment = make_experiment({"one": {"partitioner": "tp-pp", "tp": 1, "pp": 1, "microbatches": 1},
                                  "tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1, "microbatches": 1}},
                                 workload=WORKLOAD)
    for name in ("one", "tp2"):
        sim = simulate(resolve_given(experiment, name, None)).metrics  # datasheet parameters
        twin = estimate(resolve_given(experiment, name, None)).metrics
        assert sim.step_time_s == pytest.approx(twin.step_time_s, rel=1e-9)
        assert sim.breakdown is not None and twin.breakdown is not None
        assert sim.breakdown.seconds() == pytest.approx(twin.breakdown.seconds(), rel=1e-6, abs=1e-15)


def test_contention_and_bubbles_make_the_simulation_slower_than_the_bounds(make_experiment):
    # Stage 0 (one GPU) feeds stage 1 (a TP-2 group): gpu0 sends one copy to each of gpu1 and gpu2
    # over its single NVLink port, so the second copy waits for the first; the closed form
    # assumes links never contend.
    cluster = {"name": "toy4", "nodes": 1, "gpus_per_node": 4, "gpu": "h100-sxm", "intra_node_link": "nvlink4"}
    experiment = make_experiment({"p": {"partitioner": "tp-pp", "tp": 2, "pp": 1, "microbatches": 4}},
                                 workload={**WORKLOAD, "warmup_iters": 20, "measured_iters": 40},
                                 cluster=cluster, model={"num_layers": 3})
    plan = assemble_plan(experiment.model, experiment.cluster, experiment.workload,
                         [StageSpec(0, 1, 1), StageSpec(1, 3, 2)], schedule="tp-pp", partitioner="test",
                         microbatches=4)
    slow_links = toy_profile(intra_node_bw_bytes_per_s=2e4)  # links as slow as compute, so they matter
    sim = simulate(resolve_given(experiment, plan, slow_links)).metrics
    twin = estimate(resolve_given(experiment, plan, slow_links)).metrics
    assert sim.step_time_s > twin.step_time_s * (1 + 1e-6)
    # Bubbles: one microbatch through two stages is slower than the bubble-free bound.
    single = make_experiment({"p": {"partitioner": "tp-pp", "tp": 1, "pp": 2, "microbatches": 1}}, workload=WORKLOAD)
    sim1 = simulate(resolve_given(single, "p", toy_profile())).metrics
    twin1 = estimate(resolve_given(single, "p", toy_profile())).metrics
    assert twin1.simulation is not None and twin1.simulation.bubble_free_step_time_s is not None
    assert sim1.step_time_s > twin1.simulation.bubble_free_step_time_s * 1.5
    assert sim1.step_time_s == pytest.approx(twin1.step_time_s, rel=1e-9)


def test_profile_values_move_predictions(make_experiment):
    experiment = make_experiment(PP2, workload=WORKLOAD)
    base = simulate(resolve_given(experiment, "pp2", toy_profile())).metrics.step_time_s
    halved = simulate(resolve_given(experiment, "pp2", toy_profile(hbm_bw_bytes_per_s=0.5e6,
                                                                  hbm_read_bw_bytes_per_s=0.5e6))).metrics.step_time_s
    assert halved > 1.8 * base


def test_context_growth_slows_later_steps(make_experiment):
    fixed = make_experiment(PP2, workload={**WORKLOAD, "context_growth": "fixed"})
    grow = make_experiment(PP2, workload={**WORKLOAD, "context_growth": "grow"})
    a = simulate(resolve_given(fixed, "pp2", toy_profile())).metrics.step_time_s
    b = simulate(resolve_given(grow, "pp2", toy_profile())).metrics.step_time_s
    assert b > a
    twin = estimate(resolve_given(grow, "pp2", toy_profile())).metrics.step_time_s
    # The closed form at the mean context is close but not exact: with work growing every step the
    # closed loop slips a little (stages wait for the slightly longer pass of the other microbatch).
    assert twin == pytest.approx(b, rel=0.02)
