"""The one results schema, written by the simulator (source "sim") and the executor
(source "hardware"), read by the validator.

``step_time_s``: decode, the time for every sequence of the batch to get one more token
(one closed-loop round of all microbatches), in steady state; prefill, one forward pass of
the whole batch. ``tpot_s``: mean time between consecutive tokens of one sequence.
``paper_tpot_s``: 1 / tokens_per_s, the seed paper's (mis)definition of TPOT, kept only
so it can be shown beside the real one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from topology.atomic_io import write_json_atomic
from topology.datafile import load_json_file
from topology.errors import LayerwiseError

RESULT_SCHEMA_VERSION = 1
SOURCES = ("sim", "hardware")


@dataclass(frozen=True)
class StageMetrics:
    """Per-iteration means for one device of a stage."""

    stage: int
    devices: tuple[str, ...]
    compute_s: float  # kernels (GEMMs, attention, elementwise), launch costs included
    communication_s: float  # collectives and point-to-point time on this device
    idle_s: float  # waiting for input (bubbles)


@dataclass(frozen=True)
class Metrics:
    tokens_per_s: float
    step_time_s: float
    tpot_s: float | None
    ttft_s: float | None
    paper_tpot_s: float
    stages: tuple[StageMetrics, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    source: str
    experiment: dict[str, Any]  # the resolved experiment (model, cluster, workload, ...)
    plan_name: str
    plan: dict[str, Any]  # Plan.to_dict()
    metrics: Metrics
    environment: dict[str, Any]
    created_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = RESULT_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise LayerwiseError("result.source", f"must be one of {SOURCES}, got {self.source!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def metrics_from_dict(raw: dict[str, Any]) -> Metrics:
    stages = tuple(
        StageMetrics(
            stage=int(s["stage"]),
            devices=tuple(s["devices"]),
            compute_s=float(s["compute_s"]),
            communication_s=float(s["communication_s"]),
            idle_s=float(s["idle_s"]),
        )
        for s in raw.get("stages", ())
    )
    return Metrics(
        tokens_per_s=float(raw["tokens_per_s"]),
        step_time_s=float(raw["step_time_s"]),
        tpot_s=None if raw.get("tpot_s") is None else float(raw["tpot_s"]),
        ttft_s=None if raw.get("ttft_s") is None else float(raw["ttft_s"]),
        paper_tpot_s=float(raw["paper_tpot_s"]),
        stages=stages,
        extra=dict(raw.get("extra", {})),
    )


def result_from_dict(raw: dict[str, Any]) -> RunResult:
    if not isinstance(raw, dict):
        raise LayerwiseError("result", f"must be a JSON object, got {type(raw).__name__}")
    if raw.get("schema_version") != RESULT_SCHEMA_VERSION:
        raise LayerwiseError(
            "result.schema_version", f"{raw.get('schema_version')!r} is not the supported {RESULT_SCHEMA_VERSION}"
        )
    try:
        return RunResult(
            source=str(raw["source"]),
            experiment=dict(raw["experiment"]),
            plan_name=str(raw["plan_name"]),
            plan=dict(raw["plan"]),
            metrics=metrics_from_dict(raw["metrics"]),
            environment=dict(raw.get("environment", {})),
            created_utc=str(raw.get("created_utc", "")),
            schema_version=int(raw["schema_version"]),
        )
    except KeyError as exc:
        raise LayerwiseError("result", f"missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, LayerwiseError):
            raise
        raise LayerwiseError("result", f"malformed ({exc})") from None


def write_result(path: str | Path, result: RunResult) -> Path:
    return write_json_atomic(path, result.to_dict())


def load_result(path: str | Path) -> RunResult:
    return result_from_dict(load_json_file(path, "path"))
