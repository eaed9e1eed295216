"""A stage whose links no other stage uses runs each pass and each send as one timeout: which
stages qualify (worked by hand), and that the result equals the step-by-step simulation."""

from __future__ import annotations

import pytest
from sim_toy import toy_experiment, toy_profile

from sim.costs.transfers import group_ports
from sim.engine import private_stages, simulate_events, stage_transfers
from sim.resolve import resolve_given
from sim.results import build_metrics
from topology.partition.assemble import StageSpec, assemble_plan

FOUR = {"name": "toy4", "nodes": 1, "gpus_per_node": 4, "gpu": "h100-sxm", "intra_node_link": "nvlink4"}
TWO_NODES = {"name": "toy2x2", "nodes": 2, "gpus_per_node": 2, "gpu": "h100-sxm", "intra_node_link": "nvlink4",
             "inter_node_link": "ib-ndr-400"}
TP2_PP2 = [(0, 1, 2), (1, 3, 2)]  # (first layer, end layer, TP degree)
PP4 = [(0, 1, 1), (1, 2, 1), (2, 3, 1), (3, 4, 1)]


def _setup(cluster: dict, specs: list[tuple[int, int, int]], microbatches: int, layers: int = 3,
           **profile: float):
    experiment = toy_experiment({"p": {"partitioner": "tp-pp", "tp": 1, "pp": 1}}, cluster=cluster,
                                model={"num_layers": layers},
                                workload={"batch_size": 4, "warmup_iters": 0, "measured_iters": 12})
    plan = assemble_plan(experiment.model, experiment.cluster, experiment.workload,
                         [StageSpec(*s) for s in specs], "tp-pp", "hand", microbatches)
    cost = resolve_given(experiment, plan, toy_profile(**profile)).basis.cost
    return experiment, plan, cost


def _private(cluster: dict, specs: list[tuple[int, int, int]], layers: int = 3) -> list[bool]:
    experiment, plan, cost = _setup(cluster, specs, 2, layers)
    ports = [group_ports(s, experiment.cluster) if s.tp_degree > 1 else () for s in plan.stages]
    transfers = stage_transfers(plan, 64, experiment.cluster, cost, loops_back=True)
    return private_stages(ports, transfers)


def test_which_stages_are_private() -> None:
    # one TP2 stage per node: all-reduces stay on their node's links, sends cross on NIC hops
    assert _private(TWO_NODES, TP2_PP2) == [True, True]
    # one node: the send into a TP2 stage enters through a port its all-reduce holds
    assert _private(FOUR, TP2_PP2) == [False, False]
    # TP1 stages hold no all-reduce port; each sends on its own outgoing hop and into the next GPU's
    assert _private(FOUR, PP4, layers=4) == [True, True, True, True]


# contended: stage 0 (TP1) sends into stage 1 (TP2) while its long all-reduces hold the ports
CASES = {"private": (TWO_NODES, TP2_PP2, {}),
         "contended": (FOUR, [(0, 1, 1), (1, 3, 2)], {"collective_latency_s": 100e-6, "p2p_latency_s": 40e-6})}


@pytest.mark.parametrize("case", CASES)
def test_one_step_passes_equal_the_step_by_step_simulation(case: str) -> None:
    cluster, specs, profile = CASES[case]
    experiment, plan, cost = _setup(cluster, specs, 4, **profile)
    w = experiment.workload
    merged = simulate_events(plan, w, experiment.cluster, cost, steady_state=False)
    stepped = simulate_events(plan, w, experiment.cluster, cost, steady_state=False,
                              trace_iterations=w.measured_iters)  # traced iterations run step by step
    a = build_metrics(plan, w, merged, cost.params.to_dict())
    b = build_metrics(plan, w, stepped, cost.params.to_dict())
    assert a.step_time_s == pytest.approx(b.step_time_s, rel=1e-12)
    assert a.tokens_per_s == pytest.approx(b.tokens_per_s, rel=1e-12)
    assert [s.communication_s for s in a.stages] == pytest.approx([s.communication_s for s in b.stages], rel=1e-12)
    assert stepped.trace  # the step-by-step path did run
