"""The simulator's public API: simulate an experiment's plan, or estimate it in closed form.

``simulate_plan`` and ``analytic_estimate`` take the same arguments and return a
``topology.results.RunResult`` with ``source="sim"``; ``metrics.simulation.estimator`` says which
(``events`` or ``twin``).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import simpy

from sim.analytic import analytic_metrics
from sim.costs.model import CostModel, build_cost_model
from sim.engine import simulate_events
from sim.metrics import build_metrics
from sim.trace import write_trace
from topology.experiment import Experiment, build_plan
from topology.plan import Plan
from topology.profile import HardwareProfile, check_profile_for_cluster, load_profile
from topology.results import Metrics, RunResult

TRACE_ITERATIONS = 2  # measured iterations written to a trace (a whole run would be millions of slices)


def resolve_inputs(
    experiment: Experiment, plan_name: str, plan: Plan | None, profile: HardwareProfile | None,
    force_profile: bool = False,
) -> tuple[Plan, HardwareProfile | None, CostModel]:
    """The plan (built when not given), the profile (loaded when the experiment names one; refused
    for a cluster of another GPU unless ``force_profile``), the cost model."""
    if profile is None and experiment.profile_path:
        profile = load_profile(experiment.profile_path)
    if profile is not None:
        check_profile_for_cluster(profile, experiment.cluster, force_profile)
    if plan is None:
        from sim.search.partitioner import optimal_plan  # the search simulates through this module

        plan = build_plan(experiment, plan_name, lambda e, name, args: optimal_plan(e, name, args, profile, True))
    return plan, profile, build_cost_model(experiment.cluster, profile, experiment.workload.cuda_graphs)


def simulate_plan(
    experiment: Experiment,
    plan_name: str,
    plan: Plan | None = None,
    profile: HardwareProfile | None = None,
    trace_path: str | None = None,
    force_profile: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Simulate one plan of the experiment event by event (warmup, then measured iterations);
    ``progress(done, total)`` hears of the iterations as they finish."""
    plan, profile, cost = resolve_inputs(experiment, plan_name, plan, profile, force_profile)
    record = simulate_events(plan, experiment.workload, experiment.cluster, cost,
                             trace_iterations=TRACE_ITERATIONS if trace_path else 0, progress=progress)
    metrics = build_metrics(plan, experiment.workload, record, cost.params.to_dict())
    if trace_path:
        write_trace(trace_path, record.trace, plan.devices, f"{experiment.name} / {plan_name}: {plan.describe()}")
    return _result(experiment, plan_name, plan, profile, metrics)


def analytic_estimate(
    experiment: Experiment,
    plan_name: str,
    plan: Plan | None = None,
    profile: HardwareProfile | None = None,
    trace_path: str | None = None,
    force_profile: bool = False,
) -> RunResult:
    """The closed-form twin: same cost functions, no contention (``trace_path`` is ignored)."""
    del trace_path  # a closed form has no timeline
    plan, profile, cost = resolve_inputs(experiment, plan_name, plan, profile, force_profile)
    metrics = analytic_metrics(plan, experiment.workload, experiment.cluster, cost)
    return _result(experiment, plan_name, plan, profile, metrics)


def _created_utc() -> str:
    """Now, or SOURCE_DATE_EPOCH when set (reproducible output files)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    return moment.isoformat(timespec="seconds")


def _result(experiment: Experiment, plan_name: str, plan: Plan, profile: HardwareProfile | None,
            metrics: Metrics) -> RunResult:
    environment: dict[str, Any] = {
        "simulator": "layerwise sim (SimPy discrete events)",
        "simpy": simpy.__version__,
        "python": platform.python_version(),
        "profile": experiment.profile_path if profile is not None else None,
        "profile_source": profile.source if profile is not None else None,
    }
    return RunResult(source="sim", experiment=experiment.to_dict(), plan_name=plan_name, plan=plan.to_dict(),
                     metrics=metrics, environment=environment, created_utc=_created_utc())
