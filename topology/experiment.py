"""The experiment file: one contract read by the simulator and the executor.

```yaml
name: seed-16xh100
model: seed-dense-16          # a preset name, or a mapping of dimensions
cluster: seed-16xh100         # a preset name, or a mapping (nodes, gpus_per_node, gpu, links)
workload: {phase: decode, batch_size: 128, context_len: 10000, warmup_iters: 100, measured_iters: 1000}
plans:                        # one or more named plans (or a single `plan:` mapping)
  baseline:   {partitioner: tp-pp, tp: 8, pp: 2, microbatches: 8}
  layer-wise: {partitioner: cache-fit, capacity: l2, counts: weights, microbatches: 1}
  from-file:  {file: my-plan.json}      # a saved Plan (path relative to this file)
profile: null                 # optional calibration profile JSON (path relative to this file)
paper_claims_tokens_per_s: {baseline: 12800, layer-wise: 15360}   # optional, shown beside results
paper_claims_events_per_batch: {baseline: 160, layer-wise: 15}     # optional, likewise
```

``--set key=value`` overrides any entry by dotted path before resolution
(``workload.batch_size=64``, ``cluster=seed-16xh100-nvl16``, ``plans.baseline.microbatches=16``);
values are parsed as YAML.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from topology.cluster import Cluster, cluster_from_dict, load_cluster
from topology.datafile import DATA_PACKAGE, parse_yaml, preset_names, read_text_file
from topology.errors import LayerwiseError
from topology.model import ModelSpec, load_model, model_from_dict
from topology.partition import (
    OPTIMAL,
    PARTITIONERS,
    partition_cache_fit,
    partition_min_max_bytes,
    partition_tp_pp,
)
from topology.plan import Plan, load_plan_json
from topology.workload import Workload, check_positive_int, workload_from_dict

TOP_LEVEL_KEYS = {"name", "description", "model", "cluster", "workload", "plan", "plans", "profile",
                  "paper_claims_tokens_per_s", "paper_claims_events_per_batch"}
TEXT_PLAN_ARGS = ("capacity", "counts")  # every other partitioner argument is a count
PLAN_ARGS = {
    "tp-pp": {"tp", "pp", "microbatches"},
    "cache-fit": {"capacity", "counts", "microbatches", "num_devices"},
    "min-max-bytes": {"max_devices", "microbatches"},
}
# ``optimal`` is the simulator's plan search: its arguments are its own (sim/search/options.py), and
# whoever can run it passes it in as an Optimizer(experiment, plan name, the plan's arguments).
Optimizer = Callable[["Experiment", str, dict[str, Any]], Plan]


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    model: ModelSpec
    cluster: Cluster
    workload: Workload
    plan_specs: dict[str, dict[str, Any]]  # name -> partitioner and arguments (or file)
    profile_path: str | None
    paper_claims_tokens_per_s: dict[str, float]  # a paper's figures for the plans as the file states them
    base_dir: str  # where relative paths in the file are resolved
    raw: dict[str, Any]  # the file after overrides, for the record
    paper_claims_events_per_batch: dict[str, float] = field(default_factory=dict)

    @property
    def plan_names(self) -> list[str]:
        return list(self.plan_specs)

    def to_dict(self) -> dict[str, Any]:
        """The resolved experiment, as results record it."""
        return {
            "name": self.name,
            "description": self.description,
            "model": self.model.to_dict(),
            "cluster": self.cluster.to_dict(),
            "workload": self.workload.to_dict(),
            "plans": copy.deepcopy(self.plan_specs),
            "profile": self.profile_path,
        }


SERVE_PHASE = "serve"


def is_serving_raw(raw: Any) -> bool:
    """Whether an experiment file's mapping is a serving workload (``workload.phase: serve``), read by
    :mod:`serving.setup`; every other command takes fixed-batch phases only."""
    workload = raw.get("workload") if isinstance(raw, dict) else None
    return isinstance(workload, dict) and workload.get("phase") == SERVE_PHASE


def experiment_names(serving: bool | None = None) -> list[str]:
    """The shipped experiments; ``serving`` True or False: only the serving or only the fixed-batch ones."""
    names = preset_names("experiments")
    if serving is None:
        return names
    return [name for name in names if is_serving_raw(read_experiment_raw(name)[0]) == serving]


def _experiment_text(path_or_name: str) -> tuple[str, str, str]:
    """(text, origin, base_dir) for a path, or for a shipped experiment name."""
    path = Path(path_or_name)
    if path.is_file():
        return read_text_file(path, "experiment"), str(path), str(path.resolve().parent)
    entry = resources.files(DATA_PACKAGE).joinpath("experiments").joinpath(f"{path_or_name}.yaml")
    if path.suffix == "" and entry.is_file():
        return entry.read_text(encoding="utf-8"), f"experiments/{path_or_name}.yaml", "."
    known = ", ".join(experiment_names())
    raise LayerwiseError("experiment", f"no such file or shipped experiment: {path_or_name!r} (shipped: {known})")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a copy of ``raw``."""
    result = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise LayerwiseError("--set", f"{item!r} is not key=value")
        key, text = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise LayerwiseError("--set", f"{item!r} has an empty key")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        _check_plan_exists(result, parts, key.strip())
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return result


def _check_plan_exists(raw: dict[str, Any], parts: list[str], key: str) -> None:
    """``plans.NAME.arg=...`` changes an existing plan; it must not make a half plan ``NAME``."""
    if len(parts) < 3 or parts[0] != "plans" or not isinstance(raw.get("plans"), dict):
        return
    if parts[1] not in raw["plans"]:
        known = ", ".join(str(name) for name in raw["plans"]) or "none"
        raise LayerwiseError(
            key, f"no plan {parts[1]!r} to change (plans: {known}); to add a plan give it whole, "
                 f"e.g. plans.{parts[1]}={{partitioner: tp-pp, tp: 1, pp: 1}}",
        )


def read_experiment_raw(path_or_name: str, overrides: list[str] | None = None) -> tuple[dict[str, Any], str, str]:
    """An experiment file's mapping with the overrides applied, its folder and its default name."""
    text, origin, base_dir = _experiment_text(path_or_name)
    raw = apply_overrides(parse_yaml(text, origin), overrides or [])
    if not isinstance(raw, dict):
        raise LayerwiseError("experiment", f"{origin}: must be a mapping of fields")
    return raw, base_dir, Path(origin).stem


def load_experiment(path_or_name: str, overrides: list[str] | None = None) -> Experiment:
    raw, base_dir, name = read_experiment_raw(path_or_name, overrides)
    return experiment_from_dict(raw, base_dir=base_dir, default_name=name)


def experiment_from_dict(raw: dict[str, Any], base_dir: str = ".", default_name: str = "experiment") -> Experiment:
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        raise LayerwiseError("experiment", f"unknown field {unknown[0]!r} (known: {', '.join(sorted(TOP_LEVEL_KEYS))})")
    for key in ("model", "cluster", "workload"):
        if key not in raw:
            raise LayerwiseError(key, "missing from the experiment file")
    model = (
        load_model(raw["model"]) if isinstance(raw["model"], str)
        else _mapping(raw["model"], "model", model_from_dict)
    )
    cluster = (
        load_cluster(raw["cluster"]) if isinstance(raw["cluster"], str)
        else _mapping(raw["cluster"], "cluster", cluster_from_dict)
    )
    if not isinstance(raw["workload"], dict):
        raise LayerwiseError("workload", "must be a mapping")
    workload = workload_from_dict(raw["workload"])
    if "plan" in raw and "plans" in raw:
        raise LayerwiseError("plans", "give either plan: or plans:, not both")
    if "plan" in raw:
        plan_specs = {"plan": raw["plan"]}
    elif "plans" in raw:
        plan_specs = raw["plans"]
    else:
        raise LayerwiseError("plans", "missing from the experiment file")
    if not isinstance(plan_specs, dict) or not plan_specs:
        raise LayerwiseError("plans", "must be a non-empty mapping of name -> plan")
    for name, spec in plan_specs.items():
        _check_plan_spec(str(name), spec)
    claims = _claims(raw, "paper_claims_tokens_per_s", "tokens/s")
    event_claims = _claims(raw, "paper_claims_events_per_batch", "communication events per batch")
    profile = raw.get("profile")
    profile_path: str | None = None
    if profile not in (None, ""):
        profile_file = Path(str(profile))
        profile_path = str(profile_file if profile_file.is_absolute() else Path(base_dir) / profile_file)
    return Experiment(
        name=str(raw.get("name", default_name)),
        description=str(raw.get("description", "")).strip(),
        model=model,
        cluster=cluster,
        workload=workload,
        plan_specs={str(k): dict(v) for k, v in plan_specs.items()},
        profile_path=profile_path,
        paper_claims_tokens_per_s=claims,
        paper_claims_events_per_batch=event_claims,
        base_dir=base_dir,
        raw=raw,
    )


def _claims(raw: dict[str, Any], key: str, unit: str) -> dict[str, float]:
    """A mapping of plan name -> a number a paper claims for it (shown beside the results)."""
    claims = raw.get(key) or {}
    if not isinstance(claims, dict):
        raise LayerwiseError(key, f"must be a mapping of plan name -> {unit}")
    for name, claim in claims.items():
        try:
            if isinstance(claim, bool):
                raise TypeError
            float(claim)  # YAML 1.1 reads "1.5e4" as a string
        except (TypeError, ValueError):
            raise LayerwiseError(f"{key}.{name}", f"must be a number, got {claim!r}") from None
    return {str(k): float(v) for k, v in claims.items()}


def _mapping(value: Any, field: str, build: Any) -> Any:
    if not isinstance(value, dict):
        raise LayerwiseError(field, f"must be a preset name or a mapping, got {value!r}")
    return build(value)


def _check_plan_spec(name: str, spec: Any) -> None:
    where = f"plans.{name}"
    if not isinstance(spec, dict):
        raise LayerwiseError(where, "must be a mapping")
    if "file" in spec:
        if set(spec) != {"file"}:
            raise LayerwiseError(where, "a plan from a file takes only `file:`")
        return
    partitioner = spec.get("partitioner")
    if partitioner not in PARTITIONERS:
        raise LayerwiseError(f"{where}.partitioner", f"must be one of {PARTITIONERS}, got {partitioner!r}")
    if partitioner == OPTIMAL:
        return  # the search checks its own arguments when it runs
    unknown = sorted(set(spec) - {"partitioner"} - PLAN_ARGS[partitioner])
    if unknown:
        raise LayerwiseError(
            f"{where}.{unknown[0]}",
            f"not an argument of {partitioner} (arguments: {', '.join(sorted(PLAN_ARGS[partitioner]))})",
        )
    if partitioner == "tp-pp":
        for key in ("tp", "pp"):
            if key not in spec:
                raise LayerwiseError(f"{where}.{key}", "missing")
    for key, value in spec.items():
        if key not in ("partitioner", *TEXT_PLAN_ARGS):
            check_positive_int(f"{where}.{key}", value)  # counts: checked here, before any plan is built


def build_plan(experiment: Experiment, plan_name: str, optimizer: Optimizer | None = None) -> Plan:
    """Run the named plan's partitioner (or load its file) for this experiment.

    ``optimal`` is the plan search, which needs the simulator: the simulator passes ``optimizer``;
    without one (the executor), an optimal plan is refused with the command that makes its file.
    """
    if plan_name not in experiment.plan_specs:
        raise LayerwiseError("plan", f"no plan {plan_name!r} (plans: {', '.join(experiment.plan_specs)})")
    spec = dict(experiment.plan_specs[plan_name])
    if "file" in spec:
        path = Path(spec["file"])
        plan = load_plan_json(path if path.is_absolute() else Path(experiment.base_dir) / path)
        if plan.model != experiment.model:
            raise LayerwiseError(
                f"plans.{plan_name}.file",
                f"plan is for model {plan.model.name!r}, not {experiment.model.name!r}",
            )
        return plan
    partitioner = spec.pop("partitioner")
    if partitioner == OPTIMAL:
        if optimizer is None:
            raise LayerwiseError(
                f"plans.{plan_name}.partitioner",
                "optimal is the simulator's plan search: run `layerwise search EXPERIMENT --out best.plan.json`, "
                "then use `--plan best.plan.json` (or `file: best.plan.json` in the experiment)")
        return optimizer(experiment, plan_name, spec)
    args: dict[str, Any] = {
        key: value if key in TEXT_PLAN_ARGS else _int_arg(f"plans.{plan_name}.{key}", value)
        for key, value in spec.items()
    }
    m, c, w = experiment.model, experiment.cluster, experiment.workload
    if partitioner == "tp-pp":
        return partition_tp_pp(m, c, w, **args)
    if partitioner == "cache-fit":
        return partition_cache_fit(m, c, w, **args)
    return partition_min_max_bytes(m, c, w, **args)


def _int_arg(field: str, value: Any) -> int:
    """tp, pp, microbatches, num_devices, max_devices: each a count, so >= 1."""
    check_positive_int(field, value)
    return int(value)


def build_plans(experiment: Experiment) -> dict[str, Plan]:
    return {name: build_plan(experiment, name) for name in experiment.plan_specs}
