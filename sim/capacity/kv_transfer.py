"""Where a disaggregated deployment's replicas sit, and how long one request's KV cache takes to move
from its prefill replica to its decode replica over the cluster's links (pure cost functions).

**Placement**: replicas are laid on the cluster's GPUs in the order prefill 0, decode 0, prefill 1,
decode 1, ... (then the rest of the larger pool), each on the next free GPUs; a replica that fits in a
node but would straddle two starts at the next node, and one that spans nodes starts at a node's first
GPU. So a prefill replica and a decode replica share a node (NVLink) when they fit; otherwise the KV
crosses the NICs.

**Messages**: every layer's K and V for the prompt's tokens go from the prefill replica's GPUs that hold
them to the decode replica's GPUs that need them: a GPU of a stage at TP t holds KV heads
``[r H / t, (r + 1) H / t)`` of that stage's layers (t divides H: :func:`topology.model.check_tp_degree`). For each KV
head a decode GPU needs, the source is the one prefill GPU holding it.
Per token and layer a head is ``2 x head_dim x dtype`` bytes. One message per (source GPU, destination
GPU) pair carries all its layers; the messages run at once, each priced by
:func:`sim.costs.comm.p2p_cost` over :meth:`Cluster.route`, reserving the links they cross in order
(:func:`sim.costs.transfers.boundary_time_s`: a GPU's port sends one message at a time).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sim.costs.comm import p2p_cost
from sim.costs.model import CostModel
from sim.costs.transfers import Transfer, boundary_time_s
from topology.cluster import Cluster
from topology.errors import LayerwiseError
from topology.model import ModelSpec
from topology.plan import Plan, Stage


def _spans_nodes(plan: Plan, cluster: Cluster) -> bool:
    index = {device: i for i, device in enumerate(cluster.devices)}
    return max(index[d] for d in plan.devices) >= cluster.gpus_per_node


def place_replicas(plans: list[Plan], cluster: Cluster) -> list[int]:
    """The first GPU (index in ``cluster.devices``) of each replica, in the order given (module docstring)."""
    g = cluster.gpus_per_node
    offsets, free = [], 0
    for plan in plans:
        size = plan.num_devices
        start = free
        if start % g and (_spans_nodes(plan, cluster) or start % g + size > g):
            start += g - start % g
        if start + size > cluster.num_devices:
            raise LayerwiseError("disaggregated", f"replicas of {', '.join(str(p.num_devices) for p in plans)} GPUs "
                                                  f"do not fit {cluster.name}'s {cluster.num_devices} GPUs in place")
        offsets.append(start)
        free = start + size
    return offsets


def pool_order(prefill: int, decode: int) -> list[tuple[str, int]]:
    """prefill 0, decode 0, prefill 1, decode 1, ..., then the rest of the larger pool."""
    order = []
    for i in range(max(prefill, decode)):
        if i < prefill:
            order.append(("prefill", i))
        if i < decode:
            order.append(("decode", i))
    return order


def _kv_heads(rank: int, tp: int, kv_heads: int) -> range:
    per = kv_heads // tp
    return range(rank * per, (rank + 1) * per)


def _stage_of(plan: Plan, layer: int) -> Stage:
    return next(stage for stage in plan.stages if stage.layer_start <= layer < stage.layer_stop)


def kv_bytes_per_token(source: Plan, source_offset: int, target: Plan, target_offset: int, model: ModelSpec,
                       cluster: Cluster) -> dict[tuple[str, str], int]:
    """Bytes per prompt token from each source GPU to each target GPU (module docstring)."""
    index = {device: i for i, device in enumerate(cluster.devices)}

    def placed(device: str, offset: int) -> str:
        return cluster.devices[index[device] + offset]

    head_bytes = 2 * model.head_dim * model.dtype_bytes
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    for layer in range(model.num_layers):
        src, dst = _stage_of(source, layer), _stage_of(target, layer)
        for rank, device in enumerate(dst.devices):
            for head in _kv_heads(rank, dst.tp_degree, model.num_kv_heads):
                sender = src.devices[head // (model.num_kv_heads // src.tp_degree)]
                pairs[(placed(sender, source_offset), placed(device, target_offset))] += head_bytes
    return dict(pairs)


def kv_transfer_time_s(per_token: dict[tuple[str, str], int], prompt_tokens: int, cluster: Cluster,
                       cost: CostModel) -> float:
    """How long the KV of ``prompt_tokens`` tokens takes to move (the messages at once, links reserved)."""
    transfers = []
    for (src, dst), nbytes in sorted(per_token.items()):
        hops = cluster.route(src, dst)
        transfers.append(Transfer(src, dst, hops, p2p_cost(nbytes * prompt_tokens, hops, cost)))
    return boundary_time_s(tuple(transfers))


@dataclass
class KvTransferPricer:
    """The transfer time of one request between two replicas of a placed deployment (memoised by value)."""

    prefill_plan: Plan
    decode_plan: Plan
    prefill_offsets: list[int]
    decode_offsets: list[int]
    model: ModelSpec
    cluster: Cluster
    cost: CostModel
    _pairs: dict[tuple[int, int], dict[tuple[str, str], int]] = field(default_factory=dict)
    _times: dict[tuple[int, int, int], float] = field(default_factory=dict)

    def __call__(self, prompt_tokens: int, prefill_replica: int, decode_replica: int) -> float:
        key = (prompt_tokens, prefill_replica, decode_replica)
        known = self._times.get(key)
        if known is None:
            pair = (prefill_replica, decode_replica)
            if pair not in self._pairs:
                self._pairs[pair] = kv_bytes_per_token(self.prefill_plan, self.prefill_offsets[prefill_replica],
                                                       self.decode_plan, self.decode_offsets[decode_replica],
                                                       self.model, self.cluster)
            known = self._times[key] = kv_transfer_time_s(self._pairs[pair], prompt_tokens, self.cluster, self.cost)
        return known


def placed_pricer(prefill_plan: Plan, prefill_replicas: int, decode_plan: Plan, decode_replicas: int,
                  model: ModelSpec, cluster: Cluster, cost: CostModel) -> KvTransferPricer:
    """Place the replicas (module docstring) and price their transfers."""
    order = pool_order(prefill_replicas, decode_replicas)
    plans = [prefill_plan if pool == "prefill" else decode_plan for pool, _ in order]
    offsets = dict(zip(order, place_replicas(plans, cluster), strict=True))
    return KvTransferPricer(prefill_plan, decode_plan, [offsets[("prefill", i)] for i in range(prefill_replicas)],
                            [offsets[("decode", i)] for i in range(decode_replicas)], model, cluster, cost)
