"""The one Plan object: stages of contiguous layers, their devices and TP degree.

A Plan is frozen and validated once, in ``__post_init__``; every error names the field and
the numbers. Plans are saved as JSON (``to_dict``/``plan_from_dict``) beside every result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topology.cluster import Cluster
from topology.datafile import load_json_file
from topology.errors import LayerwiseError, reading
from topology.footprint import Footprint
from topology.model import ModelSpec, model_from_dict, tp_degree_problem
from topology.schema.check import validated
from topology.schema.plan import PlanFile, plan_problem_on_cluster

PLAN_SCHEMA_VERSION = 2  # 2: stages no longer carry a weight residence (the simulator decides it)
READABLE_PLAN_VERSIONS = (1, 2)
SCHEDULES = ("tp-pp", "layer-wise")


@dataclass(frozen=True)
class Stage:
    """Layers ``[layer_start, layer_stop)`` on ``devices`` (a TP group of ``tp_degree``)."""

    index: int
    layer_start: int
    layer_stop: int
    devices: tuple[str, ...]
    tp_degree: int
    footprint: Footprint  # per device

    @property
    def num_layers(self) -> int:
        return self.layer_stop - self.layer_start

    @property
    def layers(self) -> range:
        return range(self.layer_start, self.layer_stop)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "layer_start": self.layer_start,
            "layer_stop": self.layer_stop,
            "devices": list(self.devices),
            "tp_degree": self.tp_degree,
            "footprint": self.footprint.to_dict(),
        }


@dataclass(frozen=True)
class Plan:
    """How a model is split over devices, and how microbatches flow through it."""

    model: ModelSpec
    cluster_name: str
    schedule: str  # "tp-pp" (Megatron TP x PP) or "layer-wise" (one partition per device)
    partitioner: str
    microbatches: int
    stages: tuple[Stage, ...]
    device_hbm_capacity_bytes: int
    device_l2_usable_bytes: int
    device_sram_bytes: int
    fit_capacity_bytes: int | None = None  # cache-fit's capacity C, if any
    fit_counts: str | None = None  # what cache-fit counted toward C
    notes: tuple[str, ...] = field(default=())
    schema_version: int = PLAN_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != PLAN_SCHEMA_VERSION:
            raise LayerwiseError(
                "plan.schema_version", f"{self.schema_version} is not the supported {PLAN_SCHEMA_VERSION}"
            )
        if self.schedule not in SCHEDULES:
            raise LayerwiseError("plan.schedule", f"must be one of {SCHEDULES}, got {self.schedule!r}")
        if isinstance(self.microbatches, bool) or not isinstance(self.microbatches, int) or self.microbatches < 1:
            raise LayerwiseError("plan.microbatches", f"must be a positive integer, got {self.microbatches!r}")
        if not self.stages:
            raise LayerwiseError("plan.stages", "no stages")
        self._check_layers()
        self._check_devices()
        for stage in self.stages:
            self._check_stage(stage)

    def _check_layers(self) -> None:
        owner: dict[int, int] = {}
        for position, stage in enumerate(self.stages):
            if stage.index != position:
                raise LayerwiseError(f"stages[{position}].index", f"is {stage.index}, expected {position}")
            if not 0 <= stage.layer_start < stage.layer_stop <= self.model.num_layers:
                raise LayerwiseError(
                    f"stages[{position}].layers",
                    f"[{stage.layer_start}, {stage.layer_stop}) is empty or outside 0..{self.model.num_layers}",
                )
            for layer in stage.layers:
                if layer in owner:
                    raise LayerwiseError(
                        f"stages[{position}].layers",
                        f"layer {layer} is in stages {owner[layer]} and {position}",
                    )
                owner[layer] = position
        for layer in range(self.model.num_layers):
            if layer not in owner:
                raise LayerwiseError("plan.stages", f"layer {layer} is in no stage")
        for position in range(1, len(self.stages)):
            if self.stages[position].layer_start != self.stages[position - 1].layer_stop:
                raise LayerwiseError(
                    f"stages[{position}].layer_start",
                    f"{self.stages[position].layer_start} does not follow stage {position - 1}'s "
                    f"layer_stop {self.stages[position - 1].layer_stop} (stages must run in layer order)",
                )

    def _check_devices(self) -> None:
        seen: dict[str, int] = {}
        for stage in self.stages:
            for device in stage.devices:
                if device in seen:
                    raise LayerwiseError(
                        f"stages[{stage.index}].devices",
                        f"device {device} is also in stage {seen[device]} (stages must not overlap)",
                    )
                seen[device] = stage.index

    def _check_stage(self, stage: Stage) -> None:
        where = f"stages[{stage.index}]"
        if isinstance(stage.tp_degree, bool) or not isinstance(stage.tp_degree, int) or stage.tp_degree < 1:
            raise LayerwiseError(f"{where}.tp_degree", f"must be a positive integer, got {stage.tp_degree!r}")
        if stage.tp_degree != len(stage.devices):
            raise LayerwiseError(
                f"{where}.tp_degree", f"tp={stage.tp_degree} but the stage has {len(stage.devices)} devices"
            )
        problem = tp_degree_problem(self.model, stage.tp_degree)
        if problem is not None:
            raise LayerwiseError(f"{where}.tp_degree", problem)
        total = stage.footprint.total_bytes
        if total > self.device_hbm_capacity_bytes:
            raise LayerwiseError(
                f"{where}.footprint",
                f"{total / 1e9:.2f} GB per device (weights {stage.footprint.weights_bytes / 1e9:.2f}, "
                f"KV {stage.footprint.kv_cache_bytes / 1e9:.2f}, activations "
                f"{stage.footprint.activation_bytes / 1e9:.2f}) exceeds HBM "
                f"{self.device_hbm_capacity_bytes / 1e9:.2f} GB by "
                f"{(total - self.device_hbm_capacity_bytes) / 1e9:.2f} GB",
            )

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(device for stage in self.stages for device in stage.devices)

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def stage_of_device(self, device: str) -> Stage:
        for stage in self.stages:
            if device in stage.devices:
                return stage
        raise LayerwiseError("device", f"{device} is in no stage of this plan")

    def describe(self) -> str:
        tps = sorted({s.tp_degree for s in self.stages})
        tp = "x".join(str(t) for t in tps)
        return f"{self.schedule} TP{tp}xPP{self.num_stages} mb={self.microbatches}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "model": self.model.to_dict(),
            "cluster_name": self.cluster_name,
            "schedule": self.schedule,
            "partitioner": self.partitioner,
            "microbatches": self.microbatches,
            "stages": [stage.to_dict() for stage in self.stages],
            "device_hbm_capacity_bytes": self.device_hbm_capacity_bytes,
            "device_l2_usable_bytes": self.device_l2_usable_bytes,
            "device_sram_bytes": self.device_sram_bytes,
            "fit_capacity_bytes": self.fit_capacity_bytes,
            "fit_counts": self.fit_counts,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def plan_from_dict(raw: dict[str, Any], origin: str = "plan") -> Plan:
    """Rebuild (and so re-validate) a Plan from its JSON form, checked first by its schema
    (:mod:`topology.schema.plan`; ``origin`` names the file in an error)."""
    if not isinstance(raw, dict):
        raise LayerwiseError("plan", f"must be a JSON object, got {type(raw).__name__}")
    version = raw.get("schema_version")
    if version not in READABLE_PLAN_VERSIONS:
        raise LayerwiseError("plan.schema_version",
                             f"{version!r} is not one of the supported {READABLE_PLAN_VERSIONS}")
    validated(PlanFile, raw, origin, "plan")
    with reading("plan"):
        stages = tuple(
            Stage(
                index=int(s["index"]),
                layer_start=int(s["layer_start"]),
                layer_stop=int(s["layer_stop"]),
                devices=tuple(str(d) for d in s["devices"]),
                tp_degree=int(s["tp_degree"]),
                footprint=Footprint(**{k: int(v) for k, v in s["footprint"].items()}),
            )
            for s in raw["stages"]
        )
        return Plan(
            model=model_from_dict(raw["model"]),
            cluster_name=str(raw["cluster_name"]),
            schedule=str(raw["schedule"]),
            partitioner=str(raw["partitioner"]),
            microbatches=int(raw["microbatches"]),
            stages=stages,
            device_hbm_capacity_bytes=int(raw["device_hbm_capacity_bytes"]),
            device_l2_usable_bytes=int(raw["device_l2_usable_bytes"]),
            device_sram_bytes=int(raw["device_sram_bytes"]),
            fit_capacity_bytes=raw.get("fit_capacity_bytes"),
            fit_counts=raw.get("fit_counts"),
            notes=tuple(raw.get("notes", ())),
            schema_version=PLAN_SCHEMA_VERSION,  # a version 1 file reads as version 2 (its residences dropped)
        )


def load_plan_json(path: str | Path) -> Plan:
    return plan_from_dict(load_json_file(path, "plan.file"), str(path))


def check_plan_on_cluster(plan: Plan, cluster: Cluster, field: str) -> None:
    """A plan (a saved file) runs only on a cluster that has its devices and the HBM its stages need
    (:func:`topology.schema.plan.plan_problem_on_cluster`); raise naming ``field`` otherwise."""
    problem = plan_problem_on_cluster(
        plan.devices, tuple(stage.footprint.total_bytes for stage in plan.stages), plan.device_hbm_capacity_bytes,
        cluster.name, cluster.devices, cluster.gpu.hbm_capacity_bytes)
    if problem is not None:
        raise LayerwiseError(field, f"plan {plan.describe()} {problem}")
