"""Measured runs, as the validator sees them: one :class:`Measurement` per hardware result.

A measured experiment is rebuilt from the resolved experiment its result recorded, and its
plan from the exact Plan JSON it ran, so re-simulation uses the identical Plan.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topology.accuracy import plan_components, regime_of
from topology.cluster import cluster_names, load_cluster
from topology.datafile import load_json_file
from topology.errors import LayerwiseError
from topology.experiment import Experiment, experiment_from_dict
from topology.hardware import gpu_names, gpu_preset_for_device, load_gpu
from topology.imported import imported_from_dict, is_imported, run_results
from topology.plan import Plan, plan_from_dict
from topology.results import RunResult, looks_like_result, result_from_dict


@dataclass(frozen=True)
class Measurement:
    """One measured experiment: a hardware result with its rebuilt experiment and plan."""

    key: str  # unique, human-readable: experiment name / plan name (+ a suffix if repeated)
    path: str
    result: RunResult
    experiment: Experiment
    plan: Plan

    @property
    def phase(self) -> str:
        return self.experiment.workload.phase

    @property
    def measured_step_time_s(self) -> float:
        return self.result.metrics.step_time_s

    @property
    def kernel_ablation(self) -> str | None:
        """A run forced onto one attention kernel (``--sdpa-backend`` other than auto): a study of
        kernel choice on an unchanged plan, which the simulator (modelling the default kernel)
        does not predict; such runs are reported but kept out of fitting and error."""
        hardware = self.result.metrics.hardware
        backend = hardware.sdpa_backend if hardware is not None else None
        return None if backend in (None, "auto") else f"sdpa_backend={backend}"

    @property
    def cuda_graphs(self) -> bool:
        """Whether the run replayed CUDA graphs (as the executor recorded it, else as asked:
        :func:`experiment_from_record`)."""
        return self.experiment.workload.cuda_graphs

    @property
    def regime(self) -> str:
        """``decode-graph``, ``decode-eager`` or ``prefill`` (:func:`topology.accuracy.regime_of`)."""
        return regime_of(self.phase, self.cuda_graphs)

    @property
    def lease(self) -> str:
        """The machine lease the run came from: a recorded ``lease`` or ``boot_id`` in its environment,
        else the folder of its result file (each device call writes its own folder). Host-bound
        eager runs differ from lease to lease; device-bound runs do not."""
        env = self.result.environment
        return str(env.get("lease") or env.get("boot_id") or Path(self.path).parent.name)

    @property
    def device_name(self) -> str:
        """The GPU the run's environment reports (``torch.cuda.get_device_name``), else the preset's name."""
        return str(self.result.environment.get("gpu_name") or self.experiment.cluster.gpu.name)

    @property
    def components(self) -> tuple[str, ...]:
        """What the run exercised (:func:`topology.accuracy.plan_components`)."""
        return plan_components(self.plan, self.experiment.cluster, loops_back=self.phase == "decode")

    @property
    def gpu_name(self) -> str:
        return self.experiment.cluster.gpu.name

    @property
    def family(self) -> str | None:
        """The shape family of a shape-study run (``environment.family``), None otherwise."""
        family = self.result.environment.get("family")
        return str(family) if family else None

    @property
    def workload_group(self) -> str:
        """Runs of one model at one workload, whatever the plan and the GPU count: the unit a
        leave-one-group-out fold holds out."""
        w = self.experiment.workload
        model = {k: v for k, v in self.experiment.model.to_dict().items() if k != "name"}
        return json.dumps({"source": self.imported_from, "model": model, "phase": w.phase, "batch": w.batch_size,
                           "context": w.context_len, "prompt": w.prompt_len if w.phase == "prefill" else None},
                          sort_keys=True)

    @property
    def imported_from(self) -> str | None:
        """The source of a run another executor measured (``topology.imported``), None for ours."""
        imported = self.result.environment.get("imported")
        return str(imported.get("name")) if isinstance(imported, dict) else None

    def steady_workload(self) -> dict[str, Any]:
        """The workload without its iteration counts (validation compares steady-state steps; a
        profiled twin that ran fewer iterations ran the same thing); a growing context is given
        as the context at the middle of its measured window, the one re-simulation matches."""
        workload = self.experiment.workload.to_dict()
        warmup, measured = workload.pop("warmup_iters"), workload.pop("measured_iters")
        if workload.get("context_growth") == "grow":
            workload["context_len"] += warmup + measured // 2
        return workload

    @property
    def config_key(self) -> str:
        """Equal for runs the simulator cannot tell apart (model, cluster, steady workload, plan): repeats."""
        return json.dumps({"model": self.experiment.model.to_dict(), "cluster": self.experiment.cluster.to_dict(),
                           "workload": self.steady_workload(), "plan": self.plan.to_dict()}, sort_keys=True)

    @property
    def group_key(self) -> str:
        """Experiments with the same key differ only in plan (same model, cluster, workload)."""
        w = self.experiment.workload
        return (
            f"{self.experiment.model.name} on {self.experiment.cluster.name}: {w.phase} "
            f"batch {w.batch_size}, context {w.context_len}"
            + (f", prompt {w.prompt_len}" if w.phase == "prefill" else "")
            + f", {'graphs' if w.cuda_graphs else 'eager'}"
        )


def result_files(paths: list[str]) -> list[Path]:
    """Every ``*.json`` under ``paths`` (files taken as given, folders searched recursively)."""
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.json") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise LayerwiseError("results", f"no such file or folder: {item!r}")
    return sorted(set(files))


def _gpu_preset(display_name: str) -> str:
    """The GPU preset file whose ``name`` is ``display_name`` (results record the display name)."""
    if display_name in gpu_names():
        return display_name
    for preset in gpu_names():
        if load_gpu(preset).name == display_name:
            return preset
    raise LayerwiseError("experiment.cluster.gpu", f"no GPU preset named {display_name!r}")


def _cluster_record(raw: dict[str, Any]) -> dict[str, Any] | str:
    """A recorded cluster (``Cluster.to_dict``) in the form ``cluster_from_dict`` reads."""
    name = raw.get("name")
    if isinstance(name, str) and name in cluster_names():
        preset = load_cluster(name)
        if preset.to_dict() == raw:
            return name
    record = {k: v for k, v in raw.items() if k != "num_nodes"}
    if "num_nodes" in raw:
        record["nodes"] = raw["num_nodes"]
    if "gpu" in record:
        record["gpu"] = _gpu_preset(str(record["gpu"]))
    if record.get("inter_node_link") is None:
        record.pop("inter_node_link", None)
    return record


def experiment_from_record(recorded: dict[str, Any], device_name: str | None = None,
                           cuda_graphs_ran: bool | None = None) -> Experiment:
    """Rebuild the experiment a result recorded (its profile path dropped: validation picks profiles).

    Validation simulates what ran, not what was asked. ``device_name`` is the GPU the run's
    environment reports; when it maps to another GPU preset than the recorded cluster's (an
    experiment file naming h100x1 run on an H200), the cluster is rebuilt with the GPU that
    actually ran. ``cuda_graphs_ran`` is whether the executor replayed CUDA graphs
    (``metrics.hardware.cuda_graphs``); the workload asked for graphs by default, but the
    executor runs prefill eagerly, so a prefill run is simulated with eager launches.
    """
    raw = copy.deepcopy(recorded)
    if cuda_graphs_ran is not None and isinstance(raw.get("workload"), dict):
        raw["workload"]["cuda_graphs"] = cuda_graphs_ran
    if isinstance(raw.get("cluster"), dict):
        raw["cluster"] = _cluster_record(raw["cluster"])
    ran = gpu_preset_for_device(device_name) if device_name else None
    if ran is not None:
        cluster = raw["cluster"] if isinstance(raw["cluster"], dict) else load_cluster(raw["cluster"]).to_dict()
        if cluster.get("gpu") != ran:
            cluster = {**cluster, "gpu": ran}
            if cluster.get("nodes") == 1:
                cluster["name"] = f"{ran.split('-')[0]}x{cluster['gpus_per_node']}"
            else:
                cluster["name"] = f"{cluster['name']} ({ran})"
            raw["cluster"] = cluster
    raw["profile"] = None
    return experiment_from_dict(raw)


def with_iterations(experiment: Experiment, warmup_iters: int, measured_iters: int) -> Experiment:
    """The same experiment, simulated for fewer iterations (steady state is what is compared).

    With a growing context the starting context is shifted so that the middle of the shorter
    measured window sees the same context length as the middle of the original one.
    """
    w = experiment.workload
    context_len = w.context_len
    if w.phase == "decode" and w.context_growth == "grow":
        original_middle = w.warmup_iters + w.measured_iters // 2
        context_len = max(1, w.context_len + original_middle - (warmup_iters + measured_iters // 2))
    workload = dataclasses.replace(w, warmup_iters=warmup_iters, measured_iters=measured_iters,
                                   context_len=context_len)
    return dataclasses.replace(experiment, workload=workload)


def _file_results(path: Path) -> list[tuple[str, str, RunResult]]:
    """(key base, path, result) of every hardware result in one file: a result of ours, or each run of an
    imported-runs file (``topology.imported``); other JSON files (profiles, traces) give none."""
    try:
        raw = load_json_file(path, "results")
    except LayerwiseError:
        return []
    if is_imported(raw):
        imported = imported_from_dict(raw, str(path))
        preset = gpu_preset_for_device(str(imported.node.get("gpu", "")))
        if preset is None:
            raise LayerwiseError(f"results {str(path)!r}", f"node.gpu {imported.node.get('gpu')!r} matches no GPU "
                                                            "data file")
        return [(f"{imported.name}/{r.plan_name}", f"{path}#{r.plan_name}", r) for r in run_results(imported, preset)]
    if not looks_like_result(raw):
        return []  # profiles, traces and other JSON files live beside results
    result = result_from_dict(raw, str(path))  # a result that does not read is one line, never dropped
    return [(f"{path.parent.name}/{path.stem}", str(path), result)] if result.source == "hardware" else []


def load_measurements(paths: list[str]) -> list[Measurement]:
    """Hardware results under ``paths`` (ours and imported runs); other JSON files are skipped."""
    measurements: list[Measurement] = []
    seen: dict[str, int] = {}
    for base, path, result in (item for file in result_files(paths) for item in _file_results(file)):
        try:
            ran = result.metrics.hardware.cuda_graphs if result.metrics.hardware is not None else None
            experiment = experiment_from_record(result.experiment, result.environment.get("gpu_name"),
                                                ran if isinstance(ran, bool) else None)
            plan = plan_from_dict(result.plan)
        except LayerwiseError as exc:
            raise LayerwiseError(f"results {str(path)!r}", str(exc)) from None
        seen[base] = seen.get(base, 0) + 1  # e.g. h100x1/seed16-b128-c2048-mb1-graph
        key = base if seen[base] == 1 else f"{base}#{seen[base]}"
        measurements.append(Measurement(key=key, path=path, result=result, experiment=experiment, plan=plan))
    if not measurements:
        raise LayerwiseError("results", f"no hardware results (source 'hardware') under {', '.join(paths)}")
    return measurements
