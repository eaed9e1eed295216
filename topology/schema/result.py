"""A result in the shared schema (``topology/results.py``), simulated or measured.

The measured quantities a validation scores are finite and > 0 (a step time of 0 or -1 is no
measurement). Cross-field rule (:func:`result_model_problem`): the result's plan and its experiment
name the same model (a plan of another model cannot be compared with this experiment's prediction).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from topology.schema.fields import Count, Index, Name, NonNegative, Positive, Text


class StageMetricsFile(BaseModel):
    """One pipeline stage's busy, communicating and idle seconds in a step."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    stage: Index
    devices: list[Name]
    compute_s: NonNegative
    communication_s: NonNegative
    idle_s: NonNegative


class MetricsFile(BaseModel):
    """What was measured or simulated (seconds, tokens per second)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tokens_per_s: Positive
    step_time_s: Positive
    tpot_s: Positive | None = None
    ttft_s: Positive | None = None
    microbatches: Count | None = None  # version 1 files keep it in ``extra``
    stages: list[StageMetricsFile] = []
    simulation: dict[str, Any] | None = None  # the simulator's details (version 2), a mapping
    hardware: dict[str, Any] | None = None  # the executor's details (version 2), a mapping
    extra: dict[str, Any] = {}  # version 1's details


class ResultFile(BaseModel):
    """One run's result (schema versions 1 and 2)."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="layerwise result")

    schema_version: Literal[1, 2]
    source: Literal["sim", "hardware"]
    experiment: dict[str, Any]
    plan_name: Name
    plan: dict[str, Any]
    metrics: MetricsFile
    environment: dict[str, Any] = {}
    created_utc: Text = ""


def result_model_problem(experiment: dict[str, Any], plan: dict[str, Any]) -> str | None:
    """Why a result's plan and experiment disagree on the model, or None."""
    ran, planned = experiment.get("model"), plan.get("model")
    if isinstance(ran, dict) and isinstance(planned, dict) and ran != planned:
        differing = sorted(k for k in set(ran) | set(planned) if ran.get(k) != planned.get(k))
        return (f"its plan is for model {planned.get('name')!r} but its experiment ran {ran.get('name')!r} "
                f"({', '.join(differing[:4])} differ)")
    return None
