"""The seed's method: greedily group contiguous layers while a partition fits capacity C.

One partition per device (TP 1), point-to-point between neighbours. What counts toward C is
``weights``, ``weights+kv`` or ``weights+kv+activations`` (the seed's two documents differ).

Outcomes, each stated in the plan's notes:
- a layer that alone exceeds C becomes a one-layer partition marked as not fitting, with its
  overflow in bytes (so when no layer fits, the result is the seed's one layer per GPU);
- fewer partitions than devices: the remaining devices stay idle (the method never splits a
  partition to use them);
- more partitions than devices: no plan; the error says how many devices it would need.
"""

from __future__ import annotations

from topology.cluster import Cluster
from topology.errors import LayerwiseError
from topology.footprint import FOOTPRINT_COUNTS, stage_footprint
from topology.model import ModelSpec
from topology.partition.assemble import StageSpec, assemble_plan
from topology.plan import Plan
from topology.workload import Workload

CAPACITY_NAMES = ("l2", "sram", "l2+sram")


def resolve_capacity_bytes(capacity: str | int, cluster: Cluster) -> int:
    """``l2`` is the usable L2 (capacity x usable fraction), ``sram`` all shared memory."""
    if isinstance(capacity, bool):
        raise LayerwiseError("capacity", f"must be {CAPACITY_NAMES} or a byte count, got {capacity!r}")
    if isinstance(capacity, int):
        if capacity < 1:
            raise LayerwiseError("capacity", f"must be > 0 bytes, got {capacity}")
        return capacity
    text = str(capacity).strip().lower()
    if text == "l2":
        return cluster.gpu.l2_usable_bytes
    if text == "sram":
        return cluster.gpu.sram_bytes
    if text == "l2+sram":
        return cluster.gpu.l2_usable_bytes + cluster.gpu.sram_bytes
    try:
        value = int(float(text))  # "1e400" and ".inf" are no byte count: OverflowError
    except (ValueError, OverflowError):
        raise LayerwiseError(
            "capacity", f"must be one of {CAPACITY_NAMES} or a byte count, got {capacity!r}"
        ) from None
    return resolve_capacity_bytes(value, cluster)


def partition_cache_fit(
    model: ModelSpec,
    cluster: Cluster,
    workload: Workload,
    capacity: str | int = "l2",
    counts: str = "weights",
    microbatches: int = 1,
    num_devices: int | None = None,
) -> Plan:
    if counts not in FOOTPRINT_COUNTS:
        raise LayerwiseError("counts", f"must be one of {FOOTPRINT_COUNTS}, got {counts!r}")
    capacity_bytes = resolve_capacity_bytes(capacity, cluster)
    devices_available = cluster.num_devices if num_devices is None else num_devices
    if not 1 <= devices_available <= cluster.num_devices:
        raise LayerwiseError(
            "num_devices", f"{devices_available} is not between 1 and the cluster's {cluster.num_devices}"
        )

    def counted(num_layers: int) -> int:
        return stage_footprint(model, num_layers, 1, workload, microbatches).counted_bytes(counts)

    ranges: list[tuple[int, int]] = []
    notes: list[str] = []
    start = 0
    while start < model.num_layers:
        stop = start + 1
        if counted(1) > capacity_bytes:
            notes.append(
                f"layer {start} does not fit: {counts} {counted(1)} B exceed C={capacity_bytes} B "
                f"by {counted(1) - capacity_bytes} B"
            )
        else:
            while stop < model.num_layers and counted(stop + 1 - start) <= capacity_bytes:
                stop += 1
        ranges.append((start, stop))
        start = stop
    if len(ranges) > devices_available:
        raise LayerwiseError(
            "capacity",
            f"cache-fit with C={capacity_bytes} B ({counts}) makes {len(ranges)} partitions, "
            f"more than the {devices_available} devices (one partition per device); "
            f"use a larger capacity or more devices",
        )
    if len(ranges) < devices_available:
        notes.append(
            f"{len(ranges)} partitions for {devices_available} devices: "
            f"{devices_available - len(ranges)} devices stay idle"
        )
    not_fitting = sum(1 for note in notes if "does not fit" in note)
    if not_fitting == model.num_layers:
        notes.insert(0, f"no layer fits C={capacity_bytes} B: one layer per device, as the seed ran it")
    specs = [StageSpec(a, b, 1) for a, b in ranges]
    return assemble_plan(
        model, cluster, workload, specs,
        schedule="layer-wise", partitioner="cache-fit", microbatches=microbatches,
        fit_capacity_bytes=capacity_bytes, fit_counts=counts, notes=tuple(notes),
    )
