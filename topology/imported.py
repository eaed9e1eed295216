"""Runs that another executor measured: a documented format (``docs/imported-runs.md``) that the
validator reads beside the project's own results, and that every report marks as imported.

An imported-runs file says what ran and how it was timed once, for all its runs: the node (GPU,
count, links, software), the execution (CUDA graphs or eager, where the collectives sit, how stages
hand over), the timing method, and where the data came from (the original file and its SHA-256).
Each run gives its model's dimensions, its workload, its plan (TP x PP and microbatches) and the
measured step time. :func:`run_results` turns every run into the shared results schema (``source:
hardware``, ``environment.imported`` naming the origin), so validation treats it like any run,
except that it never claims it was ours.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from topology.atomic_io import write_json_atomic
from topology.datafile import load_json_file
from topology.errors import LayerwiseError, reading
from topology.experiment import build_plan, experiment_from_dict
from topology.results import HardwareDetails, Metrics, RunResult
from topology.workload import check_positive_int

FORMAT = "layerwise-imported-runs"
VERSION = 1
PHASES = ("decode", "prefill")


@dataclass(frozen=True)
class ImportedRun:
    """One measured run: what ran and its measured step time."""

    name: str
    model: dict[str, Any]  # hidden_size, num_heads, num_kv_heads, head_dim, mlp_hidden_size, gated_mlp, num_layers
    workload: dict[str, Any]  # phase, batch_size, context_len (decode) or prompt_len (prefill), cuda_graphs
    plan: dict[str, int]  # tp, pp, microbatches
    step_time_s: float

    def __post_init__(self) -> None:
        where = f"runs.{self.name}"
        for key in ("tp", "pp", "microbatches"):
            check_positive_int(f"{where}.plan.{key}", self.plan.get(key))
        step = self.step_time_s
        if isinstance(step, bool) or not isinstance(step, int | float) or not 0 < step < float("inf"):
            raise LayerwiseError(f"{where}.step_time_s", f"must be a positive number of seconds, got {step!r}")
        if self.workload.get("phase") not in PHASES:
            raise LayerwiseError(f"{where}.workload.phase", f"must be one of {PHASES}, got "
                                                            f"{self.workload.get('phase')!r}")

    @property
    def gpus(self) -> int:
        return self.plan["tp"] * self.plan["pp"]


@dataclass(frozen=True)
class ImportedRuns:
    """One source's runs and the facts they share."""

    name: str  # e.g. "h200x4-reference"
    origin: dict[str, Any]  # file, sha256, executor, readme, measured_utc_date
    node: dict[str, Any]  # gpu (the device name), gpus, links, torch
    execution: dict[str, Any]  # cuda_graphs, collectives, stage_handover, closed_loop, model
    timing: dict[str, Any]  # method, steps
    runs: tuple[ImportedRun, ...]
    extra: dict[str, Any] = field(default_factory=dict)  # the source's other measurements, kept as given

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}


def imported_from_dict(raw: Any, where: str = "imported runs") -> ImportedRuns:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise LayerwiseError(where, f"is not a {FORMAT} file")
    if raw.get("version") != VERSION:
        raise LayerwiseError(f"{where}.version", f"{raw.get('version')!r} is not the supported {VERSION}")
    with reading(where):
        runs = tuple(ImportedRun(name=str(r["name"]), model=dict(r["model"]), workload=dict(r["workload"]),
                                 plan={k: r["plan"][k] for k in ("tp", "pp", "microbatches")},
                                 step_time_s=r["step_time_s"]) for r in raw["runs"])
        names = [r.name for r in runs]
        if len(set(names)) != len(names):
            raise LayerwiseError(f"{where}.runs", "run names must be unique")
        return ImportedRuns(name=str(raw["name"]), origin=dict(raw["origin"]), node=dict(raw["node"]),
                            execution=dict(raw["execution"]), timing=dict(raw["timing"]), runs=runs,
                            extra=dict(raw.get("extra", {})))


def is_imported(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("format") == FORMAT


def load_imported(path: str | Path) -> ImportedRuns:
    return imported_from_dict(load_json_file(path, "imported runs"), str(path))


def write_imported(path: str | Path, runs: ImportedRuns) -> Path:
    return write_json_atomic(path, runs.to_dict())


def _cluster(gpu_preset: str, gpus: int) -> str:
    return f"{gpu_preset.split('-')[0]}x{gpus}"


def run_results(runs: ImportedRuns, gpu_preset: str) -> list[RunResult]:
    """Every run in the shared results schema: the experiment and the exact Plan it ran (TP x PP on
    one node of ``gpu_preset`` GPUs), its measured step, and where it came from."""
    results = []
    graphs = bool(runs.execution.get("cuda_graphs"))
    for run in runs.runs:
        model = {"name": f"{runs.name}/{_model_name(run.model)}", "vocab_size": 32000,
                 "dtype_bytes": {"bf16": 2, "fp16": 2, "fp32": 4}.get(str(run.model.get("dtype", "bf16")), 2),
                 **{k: v for k, v in run.model.items() if k != "dtype"}}
        workload = {k: v for k, v in run.workload.items() if k not in ("measured_steps", "warmup_steps")}
        workload.setdefault("cuda_graphs", graphs)
        workload.update(warmup_iters=int(run.workload.get("warmup_steps", 1)),
                        measured_iters=int(run.workload.get("measured_steps", runs.timing.get("steps", 1))))
        raw = {"name": f"{runs.name}/{run.name}", "description": f"imported from {runs.origin.get('file', '?')}",
               "model": model, "cluster": _cluster(gpu_preset, run.gpus), "workload": workload,
               "plans": {"plan": {"partitioner": "tp-pp", **run.plan}}}
        with reading(f"runs.{run.name}"):
            experiment = experiment_from_dict(raw)
            plan = build_plan(experiment, "plan")
        w = experiment.workload
        decode = w.phase == "decode"
        hardware = HardwareDetails(backend=str(runs.node.get("backend", "nccl")), cuda_graphs=bool(w.cuda_graphs),
                                   dtype=str(run.model.get("dtype", "bf16")), kv_fill="as the source filled it",
                                   kv_capacity_tokens=w.kv_capacity_tokens, sdpa_backend="auto",
                                   communication_timing="not measured apart",
                                   communication_note=str(runs.execution.get("collectives", "")))
        metrics = Metrics(tokens_per_s=w.tokens_per_iteration / run.step_time_s, step_time_s=run.step_time_s,
                          tpot_s=run.step_time_s if decode else None, ttft_s=None if decode else run.step_time_s,
                          microbatches=plan.microbatches, plan_label=plan.describe(), hardware=hardware)
        environment = {"gpu_name": runs.node.get("gpu"), "gpu_count": run.gpus, "torch": runs.node.get("torch"),
                       "lease": f"imported:{runs.name}",
                       "imported": {"name": runs.name, "origin": runs.origin, "timing": runs.timing,
                                    "execution": runs.execution}}
        results.append(RunResult(source="hardware", experiment=experiment.to_dict(), plan_name=run.name,
                                 plan=plan.to_dict(), metrics=metrics, environment=environment,
                                 created_utc=str(runs.origin.get("measured_utc_date", ""))))
    return results


def _model_name(model: dict[str, Any]) -> str:
    return f"h{model.get('hidden_size')}-l{model.get('num_layers')}"


def dumps(runs: ImportedRuns) -> str:
    return json.dumps(runs.to_dict(), indent=1, sort_keys=True) + "\n"
