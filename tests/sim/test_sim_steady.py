"""The steady state skips whole periods exactly: the same metrics as replaying every iteration."""

from __future__ import annotations

import pytest
from sim_toy import toy_experiment, toy_profile

from sim.engine import simulate_events
from sim.resolve import resolve_given
from sim.results import build_metrics
from sim.simulate import estimate
from topology.experiment import Experiment
from topology.partition.assemble import StageSpec, assemble_plan
from topology.plan import Plan
from topology.results import Metrics

FOUR = {"name": "toy4", "nodes": 1, "gpus_per_node": 4, "gpu": "h100-sxm", "intra_node_link": "nvlink4"}
TWO_NODES = {"name": "toy2x2", "nodes": 2, "gpus_per_node": 2, "gpu": "h100-sxm", "intra_node_link": "nvlink4",
             "inter_node_link": "ib-ndr-400"}


def _hand_plan(workload: dict, specs: list[tuple[int, int, int]], microbatches: int,
               cluster: dict) -> tuple[Experiment, Plan]:
    experiment = toy_experiment({"p": {"partitioner": "tp-pp", "tp": 1, "pp": 1}}, workload=workload,
                                cluster=cluster, model={"num_layers": 3})
    plan = assemble_plan(experiment.model, experiment.cluster, experiment.workload,
                         [StageSpec(*s) for s in specs], "tp-pp", "hand", microbatches)
    return experiment, plan


def _both(experiment: Experiment, plan: Plan, **profile: float) -> tuple[Metrics, Metrics, int]:
    cost = resolve_given(experiment, plan, toy_profile(**profile)).basis.cost
    replay = simulate_events(plan, experiment.workload, experiment.cluster, cost, steady_state=False)
    skipping = simulate_events(plan, experiment.workload, experiment.cluster, cost)
    params = cost.params.to_dict()
    return (build_metrics(plan, experiment.workload, replay, params),
            build_metrics(plan, experiment.workload, skipping, params),
            skipping.skipped_iterations)


def _assert_same(replay: Metrics, skipping: Metrics) -> None:
    assert skipping.step_time_s == pytest.approx(replay.step_time_s, rel=1e-9)
    assert skipping.tokens_per_s == pytest.approx(replay.tokens_per_s, rel=1e-9)
    for a, b in ((skipping.tpot_s, replay.tpot_s), (skipping.ttft_s, replay.ttft_s)):
        assert (a is None) == (b is None) and (a is None or a == pytest.approx(b, rel=1e-9))
    for mine, theirs in zip(skipping.stages, replay.stages, strict=True):
        assert mine.compute_s == pytest.approx(theirs.compute_s, rel=1e-9)
        assert mine.communication_s == pytest.approx(theirs.communication_s, rel=1e-9)
    mine, theirs = skipping.simulation, replay.simulation
    assert mine is not None and theirs is not None
    for key in ("bytes_sent_total", "collective_events_per_iteration", "p2p_messages_per_iteration"):
        assert getattr(mine.communication, key) == pytest.approx(getattr(theirs.communication, key), rel=1e-9)
    for key, value in theirs.breakdown.seconds().items():
        assert mine.breakdown.seconds()[key] == pytest.approx(value, rel=1e-9, abs=1e-15)
    assert mine.simulated_events == pytest.approx(theirs.simulated_events, rel=1e-12)


WORKLOAD = {"batch_size": 4, "warmup_iters": 5, "measured_iters": 60}


@pytest.mark.parametrize(("name", "specs", "microbatches", "cluster"), [
    ("tp2 x pp2, balanced", [(0, 1, 2), (1, 3, 2)], 4, FOUR),
    ("pp3, one microbatch (bubble-bound)", [(0, 1, 1), (1, 2, 1), (2, 3, 1)], 1, FOUR),
    ("tp2 x pp2 across two nodes", [(0, 1, 2), (1, 3, 2)], 2, TWO_NODES),
])
def test_without_contention(name: str, specs: list[tuple[int, int, int]], microbatches: int, cluster: dict) -> None:
    experiment, plan = _hand_plan(WORKLOAD, specs, microbatches, cluster)
    replay, skipping, skipped = _both(experiment, plan)
    _assert_same(replay, skipping)
    assert skipped >= WORKLOAD["measured_iters"] - 10, name


def test_with_contention() -> None:
    """Stage 0 (TP 1) sends into stage 1 (TP 2) while stage 1's long all-reduces hold its ports: the sends
    wait, so stage 0's communication time is far above the uncontended twin's, in both runs alike."""
    experiment, plan = _hand_plan(WORKLOAD, [(0, 1, 1), (1, 3, 2)], 4, FOUR)
    profile = {"collective_latency_s": 100e-6, "p2p_latency_s": 40e-6}
    replay, skipping, skipped = _both(experiment, plan, **profile)
    twin = estimate(resolve_given(experiment, plan, toy_profile(**profile))).metrics
    assert replay.stages[0].communication_s > 3 * twin.stages[0].communication_s  # the contention is real
    _assert_same(replay, skipping)
    assert skipped > 0


def test_prefill_and_eager() -> None:
    experiment, plan = _hand_plan({**WORKLOAD, "phase": "prefill", "prompt_len": 8, "context_len": 8},
                                  [(0, 1, 2), (1, 3, 2)], 2, FOUR)
    replay, skipping, skipped = _both(experiment, plan, launch_overhead_eager_s=3e-6)
    _assert_same(replay, skipping)
    assert skipped > 0


def test_a_growing_context_is_replayed() -> None:
    experiment, plan = _hand_plan({**WORKLOAD, "context_growth": "grow"}, [(0, 1, 2), (1, 3, 2)], 4, FOUR)
    replay, skipping, skipped = _both(experiment, plan)
    assert skipped == 0
    assert skipping.step_time_s == replay.step_time_s


def test_a_billion_iterations_take_a_few_periods() -> None:
    """Fixed context: measured_iters 10^9 simulates a handful of iterations and gives the short run's figures."""
    short, _ = _hand_plan(WORKLOAD, [(0, 1, 2), (1, 3, 2)], 4, FOUR)
    long, plan = _hand_plan({**WORKLOAD, "measured_iters": 1_000_000_000}, [(0, 1, 2), (1, 3, 2)], 4, FOUR)
    cost = resolve_given(long, plan, toy_profile()).basis.cost
    record = simulate_events(plan, long.workload, long.cluster, cost)
    assert long.workload.iterations - record.skipped_iterations < 40
    metrics = build_metrics(plan, long.workload, record, cost.params.to_dict())
    reference, _, _ = _both(short, plan)
    assert metrics.step_time_s == pytest.approx(reference.step_time_s, rel=1e-9)
