"""Turn layer ranges and TP degrees into a validated Plan on a cluster's devices."""

from __future__ import annotations

from dataclasses import dataclass

from topology.cluster import Cluster
from topology.errors import LayerwiseError
from topology.footprint import check_stages_fit, stage_footprint
from topology.model import ModelSpec
from topology.plan import Plan, Stage
from topology.workload import Workload


@dataclass(frozen=True)
class StageSpec:
    """A stage before devices are chosen: layers ``[layer_start, layer_stop)`` at TP ``tp_degree``."""

    layer_start: int
    layer_stop: int
    tp_degree: int


def place_stages(cluster: Cluster, tp_degrees: list[int], starts: list[int] | None = None) -> list[tuple[str, ...]]:
    """Give each stage ``tp`` consecutive devices from its start (default: right after the previous
    stage); a TP group must not span nodes."""
    devices = cluster.devices
    needed = sum(tp_degrees)
    if needed > len(devices):
        raise LayerwiseError(
            "plan.devices", f"the plan needs {needed} devices, cluster {cluster.name!r} has {len(devices)}"
        )
    placed, offset = [], 0
    for index, tp in enumerate(tp_degrees):
        if starts is not None:
            offset = starts[index]
        group = devices[offset: offset + tp]
        if len(group) < tp:
            raise LayerwiseError(f"stages[{index}].devices",
                                 f"devices {offset}..{offset + tp - 1} exceed the cluster's {len(devices)}")
        if not cluster.same_node(group):
            raise LayerwiseError(
                f"stages[{index}].devices",
                f"TP group of {tp} starting at {group[0]} spans nodes (gpus_per_node={cluster.gpus_per_node})",
            )
        placed.append(tuple(group))
        offset += tp
    return placed


def assemble_plan(
    model: ModelSpec,
    cluster: Cluster,
    workload: Workload,
    specs: list[StageSpec],
    schedule: str,
    partitioner: str,
    microbatches: int,
    fit_capacity_bytes: int | None = None,
    fit_counts: str | None = None,
    notes: tuple[str, ...] = (),
    starts: list[int] | None = None,
) -> Plan:
    """A validated Plan of ``specs``; stage ``s`` starts at device ``starts[s]`` (default: packed in order)."""
    workload.token_shape(microbatches)  # microbatches must divide the batch
    device_groups = place_stages(cluster, [spec.tp_degree for spec in specs], starts)
    check_stages_fit(model, workload, microbatches, [(s.layer_stop - s.layer_start, s.tp_degree) for s in specs],
                     cluster.gpu.hbm_capacity_bytes, partitioner, fit_counts)
    stages = []
    for index, (spec, group) in enumerate(zip(specs, device_groups, strict=True)):
        footprint = stage_footprint(
            model, spec.layer_stop - spec.layer_start, spec.tp_degree, workload, microbatches
        )
        stages.append(
            Stage(
                index=index,
                layer_start=spec.layer_start,
                layer_stop=spec.layer_stop,
                devices=group,
                tp_degree=spec.tp_degree,
                footprint=footprint,
            )
        )
    return Plan(
        model=model,
        cluster_name=cluster.name,
        schedule=schedule,
        partitioner=partitioner,
        microbatches=microbatches,
        stages=tuple(stages),
        device_hbm_capacity_bytes=cluster.gpu.hbm_capacity_bytes,
        device_l2_usable_bytes=cluster.gpu.l2_usable_bytes,
        device_sram_bytes=cluster.gpu.sram_bytes,
        fit_capacity_bytes=fit_capacity_bytes,
        fit_counts=fit_counts,
        notes=notes,
    )
