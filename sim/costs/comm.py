"""Communication costs (pure): point-to-point messages and NCCL-style all-reduce.

Point-to-point over a route of hops: ``t = latency + bytes / (min hop bw * link_efficiency)``,
latency ``p2p_latency_s`` inside a node, ``inter_node_latency_s`` when the route crosses nodes.

Ring all-reduce of ``B`` bytes per rank over ``n`` ranks of one node:
``t = collective_base_latency_s + 2(n-1) * collective_latency_s + 2(n-1)/n * B / (bw * collective_link_efficiency)``
(NCCL's own latency model: a base latency per call plus one per ring step; decode-sized messages
go by its low-latency protocol, near half the link). Inside a CUDA graph a collective pays no
host launch: the profile's measured collectives are eager calls, host launch included, so they
replace the formula in eager runs only; graph runs use the formula with fitted parameters.
Spanning ``N`` nodes of ``g`` ranks each, hierarchically: reduce-scatter inside each node,
ring all-reduce of the ``B/g`` shard across nodes, all-gather inside each node:
``t = 2[(g-1) lat_intra + (g-1)/g * B / bw_intra] + 2(N-1) lat_inter + 2(N-1)/N * (B/g) / bw_inter``.
A profile's measured fit for the op and group size replaces the formula:
``t = latency_s + factor * B / bw_bytes_per_s`` (factor ``2(n-1)/n`` for all-reduce, 1 for sendrecv).
``layerwise calibrate`` measures on one node, so a fit is used only for messages and groups
inside one node; what crosses nodes keeps the formula (the NIC's bandwidth and latency).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.costs.model import CostModel
from topology.cluster import Cluster, Hop, hop_crosses_nodes


@dataclass(frozen=True)
class CommCost:
    latency_s: float
    serialization_s: float  # time the links are busy moving the bytes
    bytes_sent_per_rank: float

    @property
    def time_s(self) -> float:
        return self.latency_s + self.serialization_s


def hop_bw_bytes_per_s(hop: Hop, cost: CostModel) -> float:
    params = cost.params
    raw = params.inter_node_bw_bytes_per_s if hop_crosses_nodes(hop) else params.intra_node_bw_bytes_per_s
    return raw * params.link_efficiency


def p2p_cost(nbytes: int, hops: tuple[Hop, ...], cost: CostModel) -> CommCost:
    if not hops or nbytes == 0:
        return CommCost(0.0, 0.0, 0.0)
    crosses = any(hop_crosses_nodes(h) for h in hops)
    fit = None if crosses else cost.collective_fit("sendrecv", 2)
    if fit is not None:
        return CommCost(fit.latency_s, nbytes / fit.bw_bytes_per_s, float(nbytes))
    params = cost.params
    latency_s = params.inter_node_latency_s if crosses else params.p2p_latency_s
    bw = min(hop_bw_bytes_per_s(h, cost) for h in hops)
    return CommCost(latency_s, nbytes / bw, float(nbytes))


def allreduce_cost(nbytes: int, devices: tuple[str, ...], cluster: Cluster, cost: CostModel) -> CommCost:
    n = len(devices)
    if n <= 1 or nbytes == 0:
        return CommCost(0.0, 0.0, 0.0)
    ring_factor = 2.0 * (n - 1) / n
    nodes = sorted({cluster.node_of(d) for d in devices})
    fit = cost.collective_fit("allreduce", n) if len(nodes) == 1 and not cost.cuda_graphs else None
    if fit is not None:
        return CommCost(fit.latency_s, ring_factor * nbytes / fit.bw_bytes_per_s, ring_factor * nbytes)
    params = cost.params
    intra_bw = params.intra_node_bw_bytes_per_s * params.collective_link_efficiency
    base_s = params.collective_base_latency_s
    if len(nodes) == 1:
        return CommCost(base_s + 2 * (n - 1) * params.collective_latency_s, ring_factor * nbytes / intra_bw,
                        ring_factor * nbytes)
    per_node = max(sum(1 for d in devices if cluster.node_of(d) == node) for node in nodes)
    num_nodes = len(nodes)
    inter_bw = params.inter_node_bw_bytes_per_s * params.link_efficiency
    shard = nbytes / per_node
    intra_factor = 2.0 * (per_node - 1) / per_node
    inter_factor = 2.0 * (num_nodes - 1) / num_nodes
    latency_s = (base_s + 2 * (per_node - 1) * params.collective_latency_s
                 + 2 * (num_nodes - 1) * params.inter_node_latency_s)
    serialization_s = intra_factor * nbytes / intra_bw + inter_factor * shard / inter_bw
    return CommCost(latency_s, serialization_s, intra_factor * nbytes + inter_factor * shard)
