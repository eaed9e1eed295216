"""The baseline: Megatron-style tensor parallelism inside a node, pipeline stages across.

Layers are split as evenly as possible; when ``pp`` does not divide the layer count, the
first ``num_layers % pp`` stages take one layer more (so stage sizes differ by at most one
and the earlier stages, which also start the pipeline, carry the extra layer).
With ``tp=1`` and ``pp > 1`` the plan is a layer-wise pipeline (schedule ``layer-wise``):
contiguous layers, one partition per GPU, split evenly rather than by cache capacity.
"""

from __future__ import annotations

from topology.cluster import Cluster
from topology.errors import LayerwiseError
from topology.model import ModelSpec, check_tp_degree
from topology.partition.assemble import StageSpec, assemble_plan
from topology.plan import Plan
from topology.workload import Workload


def even_layer_split(num_layers: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ranges covering ``num_layers``; the first ``num_layers % parts`` get one more."""
    if parts < 1 or parts > num_layers:
        raise LayerwiseError("pp", f"pp={parts} must be between 1 and num_layers={num_layers}")
    base, extra = divmod(num_layers, parts)
    ranges, start = [], 0
    for index in range(parts):
        stop = start + base + (1 if index < extra else 0)
        ranges.append((start, stop))
        start = stop
    return ranges


def partition_tp_pp(
    model: ModelSpec,
    cluster: Cluster,
    workload: Workload,
    tp: int,
    pp: int,
    microbatches: int | None = None,
) -> Plan:
    """TP groups of ``tp`` GPUs inside one node, ``pp`` pipeline stages, ``microbatches`` (default ``pp``)."""
    check_tp_degree(model, tp, field="tp")
    if tp > cluster.gpus_per_node:
        raise LayerwiseError(
            "tp", f"tp={tp} exceeds gpus_per_node={cluster.gpus_per_node} (TP groups stay inside a node)"
        )
    if tp * pp > cluster.num_devices:
        raise LayerwiseError(
            "pp", f"tp={tp} x pp={pp} = {tp * pp} devices, cluster {cluster.name!r} has {cluster.num_devices}"
        )
    specs = [StageSpec(start, stop, tp) for start, stop in even_layer_split(model.num_layers, pp)]
    return assemble_plan(
        model, cluster, workload, specs,
        schedule="layer-wise" if tp == 1 and pp > 1 else "tp-pp", partitioner="tp-pp",
        microbatches=microbatches if microbatches is not None else pp,
    )
