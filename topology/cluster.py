"""Clusters as a networkx graph of GPUs, switches and links.

Nodes: ``gpu{i}`` (kind ``gpu``), ``nvswitch{n}`` (one NVLink switch fabric per node,
kind ``switch``) and ``network`` (the inter-node switch, kind ``switch``). Edges carry a
``link`` (a :class:`LinkSpec`); a route between two GPUs is the path of greatest
bandwidth, so GPUs of one node talk over NVLink and GPUs of different nodes over their NICs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from topology.datafile import load_preset, preset_names
from topology.errors import LayerwiseError
from topology.hardware import GPUSpec, LinkSpec, load_gpu, load_link

NETWORK_SWITCH = "network"
Hop = tuple[str, str]  # a directed edge (u, v) of a route


def hop_crosses_nodes(hop: Hop) -> bool:
    """A hop into or out of the inter-node network (a NIC), not inside a node's NVLink fabric."""
    return NETWORK_SWITCH in hop
# A bound on what is built, so an absurd input (a million GPUs per node) is refused rather than
# left to run: the cluster graph grows with the GPUs, and a plan search with it.
MAX_CLUSTER_DEVICES = 131_072


def device_name(index: int) -> str:
    return f"gpu{index}"


@dataclass(frozen=True)
class Cluster:
    """A homogeneous cluster: ``num_nodes`` nodes of ``gpus_per_node`` GPUs."""

    name: str
    description: str
    num_nodes: int
    gpus_per_node: int
    gpu: GPUSpec
    intra_node_link: LinkSpec
    inter_node_link: LinkSpec | None
    graph: nx.Graph = field(compare=False, repr=False)
    gpu_preset: str = ""  # the GPU data file's name (h100-sxm), so to_dict reloads

    @property
    def num_devices(self) -> int:
        return self.num_nodes * self.gpus_per_node

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(device_name(i) for i in range(self.num_devices))

    def node_of(self, device: str) -> int:
        """The node of ``gpu{i}``: ``i // gpus_per_node`` (the graph's ``node`` attribute)."""
        index = device[3:] if device.startswith("gpu") else ""
        if not index.isdigit() or int(index) >= self.num_devices or device != device_name(int(index)):
            raise LayerwiseError("device", f"{device!r} is not a GPU of cluster {self.name!r}")
        return int(index) // self.gpus_per_node

    def route(self, src: str, dst: str) -> tuple[tuple[str, str], ...]:
        """Directed hops (u, v) from ``src`` to ``dst`` along the fastest path, in closed form:
        through the node's NVLink switch inside a node, through the network between nodes (the
        graph's cheapest path, :func:`graph_route`, which the tests check this against)."""
        if src == dst:
            return ()
        src_node, dst_node = self.node_of(src), self.node_of(dst)
        inside_is_faster = (self.inter_node_link is None or self.intra_node_link.bw_bytes_per_s_per_direction
                            >= self.inter_node_link.bw_bytes_per_s_per_direction)
        via = f"nvswitch{src_node}" if src_node == dst_node and inside_is_faster else NETWORK_SWITCH
        return ((src, via), (via, dst))

    def graph_route(self, src: str, dst: str) -> tuple[tuple[str, str], ...]:
        """The cheapest path through the cluster graph (a search; :meth:`route` is its closed form)."""
        if src == dst:
            return ()
        path = nx.shortest_path(self.graph, src, dst, weight="cost")
        return tuple(itertools.pairwise(path))

    def route_links(self, src: str, dst: str) -> tuple[LinkSpec, ...]:
        return tuple(self.graph.edges[u, v]["link"] for u, v in self.route(src, dst))

    def same_node(self, devices: tuple[str, ...]) -> bool:
        return len({self.node_of(d) for d in devices}) <= 1

    def to_dict(self) -> dict[str, Any]:
        """The mapping ``cluster_from_dict`` reads back (so recorded experiments reload)."""
        return {
            "name": self.name,
            "description": self.description,
            "nodes": self.num_nodes,
            "gpus_per_node": self.gpus_per_node,
            "gpu": self.gpu_preset or self.gpu.name,
            "intra_node_link": self.intra_node_link.name,
            "inter_node_link": self.inter_node_link.name if self.inter_node_link else None,
        }


def build_cluster(
    name: str,
    num_nodes: int,
    gpus_per_node: int,
    gpu: GPUSpec,
    intra_node_link: LinkSpec,
    inter_node_link: LinkSpec | None,
    description: str = "",
    gpu_preset: str = "",
) -> Cluster:
    if num_nodes < 1:
        raise LayerwiseError("cluster.nodes", f"must be >= 1, got {num_nodes}")
    if gpus_per_node < 1:
        raise LayerwiseError("cluster.gpus_per_node", f"must be >= 1, got {gpus_per_node}")
    if num_nodes > 1 and inter_node_link is None:
        raise LayerwiseError("cluster.inter_node_link", f"needed for {num_nodes} nodes")
    if num_nodes * gpus_per_node > MAX_CLUSTER_DEVICES:
        raise LayerwiseError(
            "cluster.nodes" if num_nodes > 1 else "cluster.gpus_per_node",
            f"{num_nodes:,} nodes x {gpus_per_node:,} GPUs = {num_nodes * gpus_per_node:,} GPUs, more than this "
            f"tool builds ({MAX_CLUSTER_DEVICES:,})",
        )
    graph = nx.Graph(name=name)
    if num_nodes > 1:
        graph.add_node(NETWORK_SWITCH, kind="switch")
    for node in range(num_nodes):
        switch = f"nvswitch{node}"
        graph.add_node(switch, kind="switch", node=node)
        for local in range(gpus_per_node):
            device = device_name(node * gpus_per_node + local)
            graph.add_node(device, kind="gpu", node=node, local_rank=local, gpu=gpu)
            graph.add_edge(
                device,
                switch,
                link=intra_node_link,
                cost=1.0 / intra_node_link.bw_bytes_per_s_per_direction,
            )
            if inter_node_link is not None and num_nodes > 1:
                graph.add_edge(
                    device,
                    NETWORK_SWITCH,
                    link=inter_node_link,
                    cost=1.0 / inter_node_link.bw_bytes_per_s_per_direction,
                )
    return Cluster(
        name=name,
        description=description,
        num_nodes=num_nodes,
        gpus_per_node=gpus_per_node,
        gpu=gpu,
        intra_node_link=intra_node_link,
        inter_node_link=inter_node_link if num_nodes > 1 else None,
        graph=graph,
        gpu_preset=gpu_preset,
    )


def cluster_names() -> list[str]:
    return preset_names("clusters")


def cluster_from_dict(raw: dict[str, Any], default_name: str = "inline") -> Cluster:
    """Build a cluster from a mapping (a preset file or an inline experiment entry)."""
    known = {"name", "description", "nodes", "gpus_per_node", "gpu", "intra_node_link", "inter_node_link"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise LayerwiseError("cluster", f"unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    for key in ("nodes", "gpus_per_node", "gpu", "intra_node_link"):
        if key not in raw:
            raise LayerwiseError(f"cluster.{key}", "missing")
    for key in ("nodes", "gpus_per_node"):
        if isinstance(raw[key], bool) or not isinstance(raw[key], int):
            raise LayerwiseError(f"cluster.{key}", f"must be an integer, got {raw[key]!r}")
    inter = raw.get("inter_node_link")
    return build_cluster(
        name=str(raw.get("name", default_name)),
        description=str(raw.get("description", "")),
        num_nodes=raw["nodes"],
        gpus_per_node=raw["gpus_per_node"],
        gpu=load_gpu(str(raw["gpu"])),
        gpu_preset=str(raw["gpu"]),
        intra_node_link=load_link(str(raw["intra_node_link"])),
        inter_node_link=load_link(str(inter)) if inter else None,
    )


def load_cluster(name: str) -> Cluster:
    raw = load_preset("clusters", name)
    raw.setdefault("name", name)
    return cluster_from_dict(raw, default_name=name)
