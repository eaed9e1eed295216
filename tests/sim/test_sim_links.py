"""Links as FIFO resources, to the exact delay: a hop carries one transfer at a time."""

from __future__ import annotations

import pytest
from sim_toy import toy_experiment, toy_profile

from sim.costs.transfers import boundary_time_s, boundary_transfers
from sim.fabric import Fabric
from sim.resolve import resolve_given
from sim.simulate import simulate
from topology.partition.assemble import StageSpec, assemble_plan

US = 1e-6
FOUR = {"name": "toy4", "nodes": 1, "gpus_per_node": 4, "gpu": "h100-sxm", "intra_node_link": "nvlink4"}


def test_two_messages_on_one_link_arrive_one_serialization_apart() -> None:
    fabric = Fabric()
    link = (("gpu0", "nvswitch0"),)
    first = fabric.hold(link, 0.0, 5 * US)
    second = fabric.hold(link, 0.0, 5 * US)  # asked at the same time: waits for the first to finish
    other = fabric.hold((("gpu1", "nvswitch0"),), 0.0, 5 * US)  # another link: no wait
    assert (first, second, other) == (0.0, 5 * US, 0.0)
    # a hold asked for later than the link frees starts when asked
    assert fabric.hold(link, 20 * US, 5 * US) == 20 * US
    # a transfer over two hops waits for the busier one
    assert fabric.hold((("gpu1", "nvswitch0"), ("gpu0", "nvswitch0")), 0.0, 1 * US) == 25 * US


def test_a_fan_out_serializes_on_the_senders_port() -> None:
    """Stage 0 (TP 1, gpu0) sends its 8-byte activation to both ranks of stage 1 (TP 2, gpu1 and gpu2):
    both messages leave through gpu0's port, 8 B / 8e6 B/s = 1 us each, and arrive 1 us (latency) after
    they finish: at latency + serialization = 2 us and latency + 2 x serialization = 3 us."""
    experiment = toy_experiment({"p": {"partitioner": "tp-pp", "tp": 1, "pp": 1}}, cluster=FOUR,
                                model={"num_layers": 3})
    plan = assemble_plan(experiment.model, experiment.cluster, experiment.workload,
                         [StageSpec(0, 1, 1), StageSpec(1, 3, 2)], "tp-pp", "hand", 1)
    cost = resolve_given(experiment, plan, toy_profile()).basis.cost
    transfers = boundary_transfers(plan.stages[0], plan.stages[1], 8, experiment.cluster, cost)
    assert [(t.src, t.dst) for t in transfers] == [("gpu0", "gpu1"), ("gpu0", "gpu2")]
    assert [t.cost.time_s for t in transfers] == pytest.approx([2 * US, 2 * US], rel=1e-12)
    assert boundary_time_s(transfers) == pytest.approx(3 * US, rel=1e-12)
    # the event simulation blocks stage 0 for the same 3 us per pass (nothing else uses its port)
    result = simulate(resolve_given(experiment, plan, toy_profile()))
    assert result.metrics.stages[0].communication_s == pytest.approx(3 * US, rel=1e-12)
