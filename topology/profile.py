"""Hardware profiles: measured numbers (``layerwise calibrate``) and fitted simulator
parameters (``layerwise validate``) that override the datasheet defaults.

Every field of :class:`ProfileParams` is optional: ``None`` (or an empty table) means
"use the GPU data file's value". ``sim_params`` holds named simulator parameters fitted by
validation; the simulator documents the names it understands and rejects unknown ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from topology.accuracy import BandLookup, RegimeError, band_for, regime_error_from_dict
from topology.atomic_io import write_json_atomic
from topology.cluster import Cluster
from topology.datafile import data_dir, load_json_file, path_given
from topology.errors import LayerwiseError, reading
from topology.hardware import gpu_names, gpu_preset_for_device, load_gpu
from topology.schema.check import validated
from topology.schema.profile import PROFILE_SCHEMA_VERSION, ProfileFile


@dataclass(frozen=True)
class GemmPoint:
    """One measured BF16 GEMM: (m x k) @ (k x n) took ``time_s``."""

    m: int
    n: int
    k: int
    time_s: float


@dataclass(frozen=True)
class AttentionPoint:
    """One measured scaled_dot_product_attention call (causal when new_tokens > 1)."""

    batch: int
    heads: int
    kv_heads: int
    head_dim: int
    new_tokens: int
    context_len: int
    time_s: float


@dataclass(frozen=True)
class CollectiveFit:
    """``time_s = latency_s + factor * bytes / bw_bytes_per_s`` for one op and group size.

    ``op`` is ``allreduce`` (factor 2(n-1)/n, so ``bw`` is NCCL's bus bandwidth) or
    ``sendrecv`` (factor 1).
    """

    op: str
    group_size: int
    latency_s: float
    bw_bytes_per_s: float


@dataclass(frozen=True)
class ProfileParams:
    hbm_bw_bytes_per_s: float | None = None  # device-to-device copy (bytes read + written) / time
    hbm_read_bw_bytes_per_s: float | None = None  # streaming read (bytes read) / time, what decode does
    matmul_flops_per_s: float | None = None  # best large BF16 GEMM rate measured
    l2_usable_bytes: int | None = None
    l2_bw_bytes_per_s: float | None = None  # effective read bandwidth of weights hot in L2
    launch_overhead_eager_s: float | None = None
    launch_overhead_graph_s: float | None = None
    collectives: tuple[CollectiveFit, ...] = ()
    gemm_points: tuple[GemmPoint, ...] = ()
    attention_points: tuple[AttentionPoint, ...] = ()
    sim_params: dict[str, float] = field(default_factory=dict)

    def collective(self, op: str, group_size: int) -> CollectiveFit | None:
        exact = [c for c in self.collectives if c.op == op and c.group_size == group_size]
        if exact:
            return exact[0]
        same_op = sorted((c for c in self.collectives if c.op == op), key=lambda c: c.group_size)
        larger = [c for c in same_op if c.group_size >= group_size]
        return larger[0] if larger else (same_op[-1] if same_op else None)


@dataclass(frozen=True)
class HardwareProfile:
    gpu_name: str
    gpu_count: int
    params: ProfileParams
    environment: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # every raw measurement
    source: str = "calibrate"  # "calibrate" (measured) or "validate-fit" (fitted to runs)
    validation: tuple[RegimeError, ...] = ()  # held-out error by regime (layerwise validate)
    created_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = PROFILE_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; a band without a bound (NaN) is written as null, so the file is valid JSON."""
        raw = asdict(self)
        for entry in raw["validation"]:
            if isinstance(entry.get("bound"), float) and math.isnan(entry["bound"]):
                entry["bound"] = None
        return raw


def profile_from_dict(raw: dict[str, Any], origin: str = "profile") -> HardwareProfile:
    """A profile from its JSON form, checked first by its schema (:mod:`topology.schema.profile`)."""
    if not isinstance(raw, dict):
        raise LayerwiseError("profile", f"must be a JSON object, got {type(raw).__name__}")
    if raw.get("schema_version") != PROFILE_SCHEMA_VERSION:
        raise LayerwiseError(
            "profile.schema_version",
            f"{raw.get('schema_version')!r} is not the supported {PROFILE_SCHEMA_VERSION}",
        )
    validated(ProfileFile, raw, origin, "profile")
    with reading("profile"):
        p = dict(raw["params"])
        params = ProfileParams(
            hbm_bw_bytes_per_s=p.get("hbm_bw_bytes_per_s"),
            hbm_read_bw_bytes_per_s=p.get("hbm_read_bw_bytes_per_s"),
            matmul_flops_per_s=p.get("matmul_flops_per_s"),
            l2_usable_bytes=p.get("l2_usable_bytes"),
            l2_bw_bytes_per_s=p.get("l2_bw_bytes_per_s"),
            launch_overhead_eager_s=p.get("launch_overhead_eager_s"),
            launch_overhead_graph_s=p.get("launch_overhead_graph_s"),
            collectives=tuple(CollectiveFit(**c) for c in p.get("collectives", ())),
            gemm_points=tuple(GemmPoint(**g) for g in p.get("gemm_points", ())),
            attention_points=tuple(AttentionPoint(**a) for a in p.get("attention_points", ())),
            sim_params={str(k): float(v) for k, v in p.get("sim_params", {}).items()},
        )
        return HardwareProfile(
            gpu_name=str(raw["gpu_name"]),
            gpu_count=int(raw["gpu_count"]),
            params=params,
            environment=dict(raw.get("environment", {})),
            raw=dict(raw.get("raw", {})),
            source=str(raw.get("source", "calibrate")),
            validation=tuple(regime_error_from_dict(v) for v in raw.get("validation", ())),
            created_utc=str(raw.get("created_utc", "")),
            schema_version=int(raw["schema_version"]),
        )


def write_profile(path: str | Path, profile: HardwareProfile) -> Path:
    return write_json_atomic(path, profile.to_dict())


def shipped_profile_name(gpu_preset: str) -> str | None:
    """The shipped fitted profile of a GPU preset (``topology/data/profiles/<gpu preset>.json``), if
    the package has one: the default profile of every command (``sim.inputs.choose_profile``)."""
    if gpu_preset and data_dir("profiles").joinpath(f"{gpu_preset}.json").is_file():
        return gpu_preset
    return None


def load_profile(path: str | Path) -> HardwareProfile:
    """A profile JSON file, or a shipped profile by name (``h100-sxm``: ``topology/data/profiles``)."""
    shipped = data_dir("profiles").joinpath(f"{path}.json")
    if not path_given(path) and Path(str(path)).suffix == "" and shipped.is_file():
        return profile_from_dict(json.loads(shipped.read_text(encoding="utf-8")))
    return profile_from_dict(load_json_file(path, "profile"), str(path))


def profile_gpu_model(gpu_name: str) -> str | None:
    """The GPU data file's ``name`` (``H100-SXM5-80GB``) that a profile's ``gpu_name`` denotes:
    that name itself, a preset file name (``h100-sxm``), or a device name as torch reports it
    (``NVIDIA H100 80GB HBM3``, matched by the preset's ``device_name_contains``); None for
    anything else (``cpu``, a made-up name)."""
    for preset in gpu_names():
        if gpu_name in (preset, load_gpu(preset).name):
            return load_gpu(preset).name
    device_preset = gpu_preset_for_device(gpu_name)
    return load_gpu(device_preset).name if device_preset is not None else None


def check_profile_for_cluster(profile: HardwareProfile, cluster: Cluster, force: bool = False) -> None:
    """A profile holds one GPU's measurements: refuse it for a cluster of another GPU (naming
    both) unless ``force`` (the command line's ``--force-profile``)."""
    if force or profile_gpu_model(profile.gpu_name) == cluster.gpu.name:
        return
    raise LayerwiseError(
        "profile",
        f"measured on {profile.gpu_name!r}, but cluster {cluster.name!r} has {cluster.gpu.name} GPUs; "
        f"a profile describes the GPU it was measured on (--force-profile applies it anyway)",
    )


def band_for_cluster(profile: HardwareProfile | None, cluster: Cluster, regime: str, model: Any = None,
                     components: tuple[str, ...] = ("kernels",)) -> BandLookup:
    """The profile's held-out band for a prediction (:func:`topology.accuracy.band_for`), if it was
    measured on the cluster's GPU (a band earned on one GPU is never lent to another)."""
    if profile is None:
        return BandLookup(None)
    found = band_for(profile.validation, regime, model, components)
    if found.band is not None and profile_gpu_model(found.band.gpu) != cluster.gpu.name:
        return BandLookup(None)
    return found
