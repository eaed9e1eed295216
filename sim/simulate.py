"""The simulator's entry points: simulate one plan event by event, or estimate it in closed form.

Both take :class:`sim.inputs.SimInputs` (resolved once by :mod:`sim.resolve`: the plan, the
profile, the one cost model) and return a ``topology.results.RunResult`` with ``source="sim"``;
``metrics.simulation.estimator`` says which (``events`` or ``twin``).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import simpy

from sim.analytic import analytic_metrics
from sim.engine import simulate_events
from sim.inputs import SimInputs
from sim.results import build_metrics
from sim.trace import write_trace
from sim.work import MAX_STAGE_PASSES, check_event_work
from topology.results import Metrics, RunResult

TRACE_ITERATIONS = 2  # measured iterations written to a trace (a whole run would be millions of slices)


def simulate(inputs: SimInputs, trace_path: str | None = None,
             progress: Callable[[int, int], None] | None = None, max_passes: int = MAX_STAGE_PASSES) -> RunResult:
    """Simulate the plan event by event (warmup, then measured iterations); ``progress(done, total)``
    hears of the iterations as they finish. A run past ``max_passes`` stage passes, or one that would not
    fit in free memory, is refused before it starts (:mod:`sim.work`)."""
    experiment, plan, cost = inputs.experiment, inputs.plan, inputs.basis.cost
    check_event_work(plan, experiment.workload, max_passes)
    record = simulate_events(plan, experiment.workload, experiment.cluster, cost,
                             trace_iterations=TRACE_ITERATIONS if trace_path else 0, progress=progress)
    metrics = build_metrics(plan, experiment.workload, record, cost.params.to_dict())
    if trace_path:
        write_trace(trace_path, record.trace, plan.devices,
                    f"{experiment.name} / {inputs.plan_name}: {plan.describe()}")
    return _result(inputs, metrics)


def estimate(inputs: SimInputs) -> RunResult:
    """The closed-form twin: the same cost functions, no contention."""
    experiment = inputs.experiment
    metrics = analytic_metrics(inputs.plan, experiment.workload, experiment.cluster, inputs.basis.cost)
    return _result(inputs, metrics)


def _created_utc() -> str:
    """Now, or SOURCE_DATE_EPOCH when set (reproducible output files)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    return moment.isoformat(timespec="seconds")


def _result(inputs: SimInputs, metrics: Metrics) -> RunResult:
    basis = inputs.basis
    profile = basis.profile
    environment: dict[str, Any] = {
        "simulator": "layerwise sim (SimPy discrete events)",
        "simpy": simpy.__version__,
        "python": platform.python_version(),
        "profile": basis.chosen.name,
        "profile_source": profile.source if profile is not None else None,
        "profile_label": basis.profile_label,
    }
    return RunResult(source="sim", experiment=inputs.experiment.to_dict(), plan_name=inputs.plan_name,
                     plan=inputs.plan.to_dict(), metrics=metrics, environment=environment,
                     created_utc=_created_utc())
