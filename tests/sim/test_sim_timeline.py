"""Hand-worked timelines on the 2-GPU toy cluster, asserted to the exact time."""

from __future__ import annotations

import pytest
from sim_toy import toy_profile

from sim.engine import simulate_events
from sim.resolve import resolve_given
from sim.simulate import estimate, simulate

US = 1e-6

# Bytes one device moves per layer at TP 1, decode, 1 sequence, context 4, BF16 (d = 2), T = 1 token:
#   attn_norm  8 (weight) + 16 (in, out)                 = 24
#   qkv        4x12x2 = 96 (weight) + (4 + 12) x 2       = 128
#   attention  16 (q in, o out) + KV read 1x4x2x2x2x2=64 + KV write 16 = 96
#   o_proj     4x4x2 = 32 + (4 + 4) x 2                  = 48
#   attn_res   3 x 4 x 2                                 = 24
#   mlp_norm                                             = 24
#   gate_up    4x8x2 = 64 + (4 + 8) x 2                  = 88
#   act (GELU) 2 x 8 x 2                                 = 32
#   down       8x4x2 = 64 + (8 + 4) x 2                  = 88
#   mlp_res                                              = 24
# total 576 bytes = 576 us at 1e6 B/s.
LAYER_TP1_US = 576.0
# A stage boundary message: 1 token x hidden 4 x 2 bytes = 8 bytes: 1 us latency + 8 / 8e6 s = 2 us.
SEND_US = 2.0


def test_two_stage_closed_loop_one_microbatch(make_experiment):
    experiment = make_experiment({"pp2": {"partitioner": "tp-pp", "tp": 1, "pp": 2, "microbatches": 1}})
    inputs = resolve_given(experiment, "pp2", toy_profile())
    plan, cost = inputs.plan, inputs.basis.cost
    record = simulate_events(plan, experiment.workload, experiment.cluster, cost)
    # Token 0: stage 0 (576), send (2), stage 1 (576) -> leaves at 1154 us. Each later token also
    # waits for the return trip to stage 0 (2 us): 1154 + 1156 = 2310, then 3466.
    # (warmup 1, measured 2: the window runs from token 0 leaving to token 2 leaving)
    assert record.recorder.window_start_s == pytest.approx([1154 * US], rel=1e-12)
    assert record.recorder.window_end_s == pytest.approx([3466 * US], rel=1e-12)
    result = simulate(resolve_given(experiment, "pp2", toy_profile()))
    # Measured window: from token 0 (warmup) leaving to token 2 leaving = 2 steps of 1156 us.
    assert result.metrics.step_time_s == pytest.approx(1156 * US, rel=1e-12)
    assert result.metrics.tpot_s == pytest.approx(1156 * US, rel=1e-12)
    assert result.metrics.tokens_per_s == pytest.approx(1 / (1156 * US), rel=1e-12)
    stage0 = result.metrics.stages[0]
    assert stage0.compute_s == pytest.approx(LAYER_TP1_US * US, rel=1e-12)
    assert stage0.communication_s == pytest.approx(SEND_US * US, rel=1e-12)
    assert stage0.idle_s == pytest.approx((1156 - 578) * US, rel=1e-12)
    assert result.metrics.simulation is not None
    comm = result.metrics.simulation.communication
    assert comm.p2p_transfers_per_iteration == 1 and comm.loopback_transfers_per_iteration == 1
    assert comm.collective_events_per_iteration == 0


def test_tensor_parallel_stage_with_allreduces(make_experiment):
    experiment = make_experiment({"tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1, "microbatches": 1}})
    # Per device at TP 2, per layer: attn_norm 24, qkv 4x6x2 + (4+6)x2 = 68, attention 8 + 32 + 8 = 48,
    # o_proj 2x4x2 + (2+4)x2 = 28, attn_res 24, mlp_norm 24, gate_up 4x4x2 + (4+4)x2 = 48, act 2x4x2 = 16,
    # down 48, mlp_res 24: 352 bytes = 352 us. Two ring all-reduces of 8 bytes over 2 ranks, each
    # 2(n-1) x 1 us + 2(n-1)/n x 8 B / 8e6 B/s = 2 + 1 = 3 us. Two layers: 2 x (352 + 6) = 716 us.
    result = simulate(resolve_given(experiment, "tp2", toy_profile()))
    assert result.metrics.step_time_s == pytest.approx(716 * US, rel=1e-12)
    stage = result.metrics.stages[0]
    assert stage.compute_s == pytest.approx(704 * US, rel=1e-12)
    assert stage.communication_s == pytest.approx(12 * US, rel=1e-12)
    assert stage.idle_s == pytest.approx(0.0, abs=1e-15)
    assert result.metrics.simulation is not None
    assert result.metrics.simulation.communication.collective_events_per_iteration == 4
    analytic = estimate(resolve_given(experiment, "tp2", toy_profile()))
    assert analytic.metrics.step_time_s == pytest.approx(716 * US, rel=1e-12)


def test_prefill_two_stages_two_microbatches(make_experiment):
    experiment = make_experiment(
        {"pp2": {"partitioner": "tp-pp", "tp": 1, "pp": 2, "microbatches": 2}},
        workload={"phase": "prefill", "batch_size": 2, "prompt_len": 4, "context_len": 4},
    )
    result = simulate(resolve_given(experiment, "pp2", toy_profile()))
    analytic = estimate(resolve_given(experiment, "pp2", toy_profile()))
    # Flow shop of 2 identical jobs through 2 stages with no contention: makespan = sum + (M-1) max.
    assert result.metrics.step_time_s == pytest.approx(analytic.metrics.step_time_s, rel=1e-12)
    assert result.metrics.ttft_s is not None and result.metrics.tpot_s is None
