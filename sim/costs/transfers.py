"""Messages between stages and the ports a collective holds (pure; no SimPy).

At a stage boundary every receiving rank ``j`` gets the activation from sending rank
``j mod t_src`` (:func:`boundary_transfers`), each message over the cluster's route between the
two GPUs, priced by :func:`sim.costs.comm.p2p_cost`. When nothing else contends, the sender is
blocked for :func:`boundary_time_s`: its messages reserve their hops in order on a fresh
:class:`~sim.fabric.Fabric` (a fan-out waits on the sender's port). The event engine, the
closed-form twin and the search all price boundaries here.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.costs.comm import CommCost, p2p_cost
from sim.costs.model import CostModel
from sim.fabric import Fabric
from topology.cluster import Cluster, Hop, hop_crosses_nodes
from topology.plan import Stage


@dataclass(frozen=True)
class Transfer:
    """One rank-to-rank message of a stage boundary."""

    src: str
    dst: str
    hops: tuple[Hop, ...]
    cost: CommCost


def boundary_transfers(src: Stage, dst: Stage, nbytes: int, cluster: Cluster, cost: CostModel) -> tuple[Transfer, ...]:
    """Every receiving rank ``j`` gets the activation from sending rank ``j mod t_src`` (one copy each)."""
    transfers = []
    for j, b in enumerate(dst.devices):
        a = src.devices[j % src.tp_degree]
        if a == b:
            continue
        hops = cluster.route(a, b)
        transfers.append(Transfer(a, b, hops, p2p_cost(nbytes, hops, cost)))
    return tuple(transfers)


def boundary_time_s(transfers: tuple[Transfer, ...]) -> float:
    """How long a stage is blocked sending one activation when no other traffic contends: its
    rank-to-rank messages reserve their hops in order (a fan-out waits on the sender's port)."""
    fabric = Fabric()
    return max((fabric.hold(t.hops, 0.0, t.cost.serialization_s) + t.cost.time_s for t in transfers), default=0.0)


def group_ports(stage: Stage, cluster: Cluster) -> tuple[Hop, ...]:
    """Both directions of every link of every device of the stage (what a collective holds)."""
    ports: list[Hop] = []
    for device in stage.devices:
        for neighbour in sorted(cluster.graph.neighbors(device)):
            ports += [(device, neighbour), (neighbour, device)]
    if cluster.same_node(stage.devices):
        ports = [p for p in ports if not hop_crosses_nodes(p)]
    return tuple(ports)
