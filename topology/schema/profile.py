"""A hardware profile file (``layerwise calibrate``, fitted by ``layerwise validate --ship-profile``).

Every measured rate and size is finite and > 0, every time > 0 (a launch overhead or a collective
latency may be 0, and is at most a second; a measured kernel call at most a minute); ``raw`` and
``environment`` are the calibration's own record and are kept as given, but must hold no NaN or
infinity (they are written back into results)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from topology.schema.fields import (
    MAX_KERNEL_S,
    Count,
    Finite,
    KernelSeconds,
    MeasuredSeconds,
    Name,
    NonNegative,
    Positive,
    PositiveBytes,
    Text,
)

PROFILE_SCHEMA_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CollectiveFitFile(_Record):
    """``time_s = latency_s + factor * bytes / bw_bytes_per_s`` for one op and group size."""

    op: Literal["allreduce", "sendrecv"]
    group_size: Count
    latency_s: KernelSeconds
    bw_bytes_per_s: Positive


class GemmPointFile(_Record):
    """One measured GEMM: (m x k) @ (k x n) took ``time_s`` seconds."""

    m: Count
    n: Count
    k: Count
    time_s: MeasuredSeconds


class AttentionPointFile(_Record):
    """One measured attention call."""

    batch: Count
    heads: Count
    kv_heads: Count
    head_dim: Count
    new_tokens: Count
    context_len: Count
    time_s: MeasuredSeconds


class ProfileParamsFile(_Record):
    """Measured values that override the GPU data file's (null: the data file's value)."""

    hbm_bw_bytes_per_s: Positive | None = None
    hbm_read_bw_bytes_per_s: Positive | None = None
    matmul_flops_per_s: Positive | None = None
    l2_usable_bytes: PositiveBytes | None = None
    l2_bw_bytes_per_s: Positive | None = None
    launch_overhead_eager_s: KernelSeconds | None = None
    launch_overhead_graph_s: KernelSeconds | None = None
    collectives: tuple[CollectiveFitFile, ...] = ()
    gemm_points: tuple[GemmPointFile, ...] = ()
    attention_points: tuple[AttentionPointFile, ...] = ()
    sim_params: dict[str, Finite] = {}  # the simulator checks each name's own range (sim/params.py)

    @field_validator("sim_params")
    @classmethod
    def _times_are_times(cls, value: dict[str, float]) -> dict[str, float]:
        for name, number in value.items():
            if name.endswith("_s") and not name.endswith("_per_s") and not 0.0 <= number <= MAX_KERNEL_S:
                raise ValueError(f"{name} is {number!r}: a time per kernel, message or iteration must be "
                                 f"within [0, {MAX_KERNEL_S:g}] s")
        return value


class RegimeErrorFile(_Record):
    """A held-out error of one regime (``layerwise validate``)."""

    regime: Name
    gpu: Text
    runs: Count
    configurations: Count
    mape: NonNegative
    worst: NonNegative
    components: tuple[Text, ...]
    bound: NonNegative | None = None  # None (older files: NaN) where no bound could be computed
    hosts: Count = 1
    source: Text = ""
    family: Text = ""
    shapes: tuple[tuple[Finite, ...], ...] = ()
    tp_sizes: tuple[Count, ...] = ()

    @field_validator("bound", mode="before")
    @classmethod
    def _no_bound(cls, value: Any) -> Any:
        return None if isinstance(value, float) and math.isnan(value) else value


def _finite_everywhere(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path} is {value!r}: a profile holds finite numbers only")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite_everywhere(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            _finite_everywhere(item, f"{path}[{position}]")


class ProfileFile(_Record):
    """A profile JSON file (schema version 1)."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="layerwise hardware profile")

    schema_version: Literal[1]
    gpu_name: Text
    gpu_count: Count
    params: ProfileParamsFile
    environment: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    source: Literal["calibrate", "validate-fit"] = "calibrate"
    validation: tuple[RegimeErrorFile, ...] = ()
    created_utc: Text = ""

    @field_validator("environment", "raw")
    @classmethod
    def _finite(cls, value: dict[str, Any]) -> dict[str, Any]:
        _finite_everywhere(value, "")
        return value
