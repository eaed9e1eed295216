"""Measured serving runs and the simulator's runs of the same requests.

A measured run is a ``layerwise-serving-run`` record (source "measured"): its experiment, plan,
scheduler, every request and every iteration. The simulator serves the *recorded* requests (the same
arrival instants and lengths) with the record's scheduler, pipeline depth, replicas and router, so the
two runs differ only by what the iterations cost. An engine that captured no CUDA graph ran every
iteration eagerly, and the prediction prices them so: the simulator models the engine that was measured.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serving.batch import IterationPlan
from serving.driver import ServingRun, run_serving
from serving.replay import replay_source
from serving.requests import RequestSpec
from serving.run_record import ServingRunRecord, serving_record_from_dict
from serving.setup import ServingSetup, serving_setup_from_dict
from serving.sources import OpenLoopSource
from sim.inputs import Basis, basis_of, given_profile
from sim.serving.run import iteration_pricer
from topology.errors import LayerwiseError
from topology.plan import Plan, plan_from_dict
from topology.profile import HardwareProfile

PriceFn = Callable[[IterationPlan], float]


@dataclass(frozen=True)
class MeasuredServing:
    """One measured serving run: its name (the file's stem), set-up, plan and record."""

    name: str
    setup: ServingSetup
    plan: Plan
    record: ServingRunRecord

    @property
    def eager(self) -> bool:
        """True when the engine replayed no CUDA graph (every iteration ran eagerly)."""
        graphs = self.record.environment.get("serving", {}).get("cuda_graphs", {})
        return not graphs.get("captured_sizes")

    @property
    def num_gpus(self) -> int:
        return self.plan.num_devices * self.record.run.replicas

    @property
    def rate_per_s(self) -> float | None:
        """The workload's Poisson or Gamma rate, None for other arrivals."""
        arrivals = self.record.experiment.get("workload", {}).get("arrivals", {})
        rate = arrivals.get("rate_per_s") if isinstance(arrivals, dict) else None
        return float(rate) if rate is not None else None


def load_serving_runs(folder: str) -> list[MeasuredServing]:
    """Every measured serving record (``*.json`` whose schema is a serving run) in ``folder``, by name."""
    root = Path(folder)
    if not root.is_dir():
        raise LayerwiseError("FOLDER", f"{folder!r} is not a folder of measured serving runs")
    runs = []
    for path in sorted(root.glob("*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LayerwiseError(str(path), f"not readable JSON ({type(exc).__name__})") from None
        if not isinstance(raw, dict) or raw.get("schema") != "layerwise-serving-run":
            continue  # a summary, a profile: not a run
        record = serving_record_from_dict(raw, str(path))
        if record.source != "measured":
            raise LayerwiseError(f"{path}.source", f"must be 'measured', got {record.source!r}")
        setup = serving_setup_from_dict(record.experiment, str(root), path.stem)
        runs.append(MeasuredServing(path.stem, setup, plan_from_dict(record.plan), record))
    if not runs:
        raise LayerwiseError("FOLDER", f"{folder!r} holds no measured serving run (layerwise-serving-run records)")
    return runs


def run_basis(run: MeasuredServing, profile: HardwareProfile | None, label: str) -> Basis:
    """What prices this run's iterations: its experiment with ``profile``."""
    return basis_of(run.setup.experiment, given_profile(profile, label), force=True)


def price_fn(run: MeasuredServing, basis: Basis) -> PriceFn:
    """The iteration time of the engine that was measured (eager throughout when it had no graph)."""
    pricer = iteration_pricer(basis, run.plan)
    if not run.eager:
        return pricer
    return lambda plan: pricer(dataclasses.replace(plan, cuda_graph=False))


def simulate_measured(run: MeasuredServing, price: PriceFn, scale_arrivals: float = 1.0) -> ServingRun:
    """The simulator's run of the recorded requests (arrival instants times ``scale_arrivals``)."""
    source = replay_source(run.record)
    if scale_arrivals != 1.0:
        if not isinstance(source, OpenLoopSource):
            raise LayerwiseError("workload.arrivals", "a closed loop's rate cannot be scaled")
        source = OpenLoopSource(tuple(RequestSpec(s.request_id, s.arrival_s * scale_arrivals, s.prompt_tokens,
                                                  s.output_tokens) for s in source.requests))
    recorded = run.record.run
    return run_serving(source, run.record.scheduler, price, pipeline_depth=recorded.pipeline_depth,
                       replicas=recorded.replicas, router=run.record.router)
