"""Simulate a serving experiment on one plan: requests from the workload, the iteration scheduler of
:mod:`serving.scheduler` on every replica, iterations priced by :class:`IterationPricer`, the pure
event driver of :mod:`serving.driver` (a pipeline keeps as many iterations in flight as it has stages).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from serving.batch import IterationPlan
from serving.driver import ServingRun, run_serving
from serving.latency import ServingMetrics, serving_metrics
from serving.run_record import ServingRunRecord
from serving.scheduler_config import SchedulerConfig
from serving.setup import ServingSetup
from serving.sources import request_source
from sim.costs.build import build_cost_model
from sim.costs.residency import plan_counts_sram
from sim.inputs import Basis
from sim.serving.iteration_cost import IterationPricer
from topology.plan import Plan

Progress = Callable[[float, str], None]  # (fraction of the arrivals' time span reached, a short note)
PROGRESS_EVERY = 2048  # iterations between progress calls


@dataclass(frozen=True)
class ServingPrediction:
    """One plan's simulated serving run and its metrics."""

    plan_name: str
    plan: Plan
    scheduler: SchedulerConfig
    record: ServingRunRecord
    metrics: ServingMetrics
    pricer: IterationPricer

    @property
    def run(self) -> ServingRun:
        return self.record.run


def iteration_pricer(basis: Basis, plan: Plan) -> IterationPricer:
    experiment = basis.experiment
    graph = build_cost_model(experiment.cluster, basis.profile, True)
    eager = build_cost_model(experiment.cluster, basis.profile, False)
    return IterationPricer(experiment.model, plan, experiment.cluster, graph, eager, plan_counts_sram(plan))


def _with_progress(pricer: IterationPricer, horizon_s: float, progress: Progress | None
                   ) -> Callable[[IterationPlan], float]:
    if progress is None:
        return pricer
    count = 0

    def timed(plan: IterationPlan) -> float:
        nonlocal count
        count += 1
        if count % PROGRESS_EVERY == 0:
            progress(min(plan.scheduled_s / horizon_s, 1.0) if horizon_s > 0 else 0.0, f"{count} iterations")
        return pricer(plan)

    return timed


def simulate_serving(setup: ServingSetup, basis: Basis, plan_name: str, plan: Plan,
                     progress: Progress | None = None) -> ServingPrediction:
    """Serve the setup's requests on ``setup.replicas`` copies of ``plan`` and measure them."""
    scheduler = setup.scheduler_for(plan)
    pricer = iteration_pricer(basis, plan)
    source = request_source(setup.workload)
    horizon_s = max((spec.arrival_s for spec in source.initial_requests()), default=0.0)
    source = request_source(setup.workload)  # fresh: a source is used once
    run = run_serving(source, scheduler, _with_progress(pricer, horizon_s, progress),
                      pipeline_depth=plan.num_stages, replicas=setup.replicas, router=setup.router)
    record = ServingRunRecord(source="simulated", experiment=setup.experiment.raw, plan=plan.to_dict(),
                              scheduler=scheduler, run=run, router=setup.router,
                              environment={"profile": basis.profile_label})
    metrics = serving_metrics(run.records, num_gpus=plan.num_devices * setup.replicas, slos=setup.slos,
                              samples=run.samples)
    return ServingPrediction(plan_name, plan, scheduler, record, metrics, pricer)
