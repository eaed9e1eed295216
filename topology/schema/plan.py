"""A saved ``Plan`` (``*.plan.json``, ``plans.NAME.file`` in an experiment, ``--plan FILE``), and where a
plan may run.

The file's own rules (counts are integers, footprints are bytes >= 0, layers and devices) are
checked here before :class:`topology.plan.Plan` is built (which checks the rest: layer coverage, TP
degrees, the footprint against the plan's HBM). :func:`plan_problem_on_cluster` is the rule across
files: a plan runs only on a cluster that has its devices and enough HBM on each.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from topology.schema.fields import Bytes, Count, Index, Name, PositiveBytes, Text
from topology.schema.model import ModelFile


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FootprintFile(_Record):
    """Bytes one device of a stage holds."""

    weights_bytes: Bytes
    kv_cache_bytes: Bytes
    activation_bytes: Bytes


class StageFile(_Record):
    """Layers ``[layer_start, layer_stop)`` on ``devices`` (a TP group of ``tp_degree``)."""

    index: Index
    layer_start: Index
    layer_stop: Count
    devices: tuple[Name, ...]
    tp_degree: Count
    footprint: FootprintFile


class PlanFile(_Record):
    """A Plan as ``Plan.to_dict`` writes it (schema version 2; version 1 files still read)."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="layerwise plan")

    schema_version: Literal[1, 2]
    model: ModelFile
    cluster_name: Text
    schedule: Literal["tp-pp", "layer-wise"]
    partitioner: Text
    microbatches: Count
    stages: tuple[StageFile, ...]
    device_hbm_capacity_bytes: PositiveBytes
    device_l2_usable_bytes: Bytes
    device_sram_bytes: Bytes
    fit_capacity_bytes: Bytes | None = None
    fit_counts: Text | None = None
    notes: tuple[Text, ...] = ()

    @model_validator(mode="after")
    def _layers_within_model(self) -> PlanFile:
        for position, stage in enumerate(self.stages):
            if stage.layer_stop > self.model.num_layers:
                raise ValueError(f"stages[{position}].layer_stop {stage.layer_stop} is past the model's "
                                 f"{self.model.num_layers} layers")
        return self


def plan_problem_on_cluster(devices: tuple[str, ...], footprint_bytes: tuple[int, ...], plan_hbm_bytes: int,
                            cluster_name: str, cluster_devices: tuple[str, ...], cluster_hbm_bytes: int) -> str | None:
    """Why a plan (its ``devices`` and per-stage ``footprint_bytes`` per device, made for HBM of
    ``plan_hbm_bytes``) cannot run on a cluster, or None."""
    missing = [d for d in devices if d not in set(cluster_devices)]
    if missing:
        return (f"names {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}, which cluster "
                f"{cluster_name!r} ({len(cluster_devices)} GPUs) does not have")
    largest = max(footprint_bytes, default=0)
    if largest > cluster_hbm_bytes:
        return (f"needs {largest / 1e9:.2f} GB per device, more than the {cluster_hbm_bytes / 1e9:.2f} GB of HBM "
                f"of cluster {cluster_name!r}'s GPUs (the plan was made for {plan_hbm_bytes / 1e9:.2f} GB)")
    return None
