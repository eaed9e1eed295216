"""Simulate a serving experiment on one plan: requests from the workload, the iteration scheduler of
:mod:`serving.scheduler` on every replica, iterations priced by :class:`IterationPricer`, the event
driver (a pipeline keeps as many iterations in flight as it has stages).

The run is :mod:`serving.fast`'s: the reference driver's run exactly, at a cost per iteration that
does not grow with the requests decoding. ``detail`` says what it keeps: ``trace`` every iteration's
plan (the run record of ``serving.run_record`` in full), ``records`` every request's timestamps and the
iterations as columns, ``summary`` no per-token time at all (``serving.fast.summary``: a million
requests in bounded memory). Pricing uses the token grid of :mod:`sim.serving.token_grid` unless
``exact_pricing``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from serving.driver import ServingRun
from serving.fast.run import run_serving_fast
from serving.fields import one_of
from serving.latency import ServingMetrics, serving_metrics
from serving.run_record import ServingRunRecord
from serving.scheduler_config import SchedulerConfig
from serving.setup import ServingSetup
from serving.sources import OpenLoopColumns, request_source
from sim.costs.build import build_cost_model
from sim.costs.residency import plan_counts_sram
from sim.inputs import Basis
from sim.serving.iteration_cost import IterationPricer
from topology.plan import Plan

Progress = Callable[[float, str], None]  # (fraction of the arrivals' time span reached, a short note)
DETAILS = ("trace", "records")


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


def iteration_pricer(basis: Basis, plan: Plan, token_grid: bool = False) -> IterationPricer:
    experiment = basis.experiment
    graph = build_cost_model(experiment.cluster, basis.profile, True)
    eager = build_cost_model(experiment.cluster, basis.profile, False)
    return IterationPricer(experiment.model, plan, experiment.cluster, graph, eager, plan_counts_sram(plan),
                           token_grid=token_grid)


def _progress(horizon_s: float, progress: Progress | None) -> Callable[[float, int], None] | None:
    if progress is None:
        return None

    def report(now_s: float, iterations: int) -> None:
        progress(min(now_s / horizon_s, 1.0) if horizon_s > 0 else 0.0, f"{iterations} iterations")

    return report


def arrivals_horizon_s(setup: ServingSetup) -> float:
    """The last arrival of an open-loop workload (0 for a closed loop: its span is not known ahead)."""
    source = request_source(setup.workload)
    if isinstance(source, OpenLoopColumns):
        return float(source.arrival_s[-1]) if len(source) else 0.0
    return max((spec.arrival_s for spec in source.initial_requests()), default=0.0)


def simulate_serving(setup: ServingSetup, basis: Basis, plan_name: str, plan: Plan,
                     progress: Progress | None = None, *, detail: str = "trace",
                     exact_pricing: bool = False) -> ServingPrediction:
    """Serve the setup's requests on ``setup.replicas`` copies of ``plan`` and measure them."""
    one_of("detail", detail, DETAILS)
    scheduler = setup.scheduler_for(plan)
    pricer = iteration_pricer(basis, plan, token_grid=not exact_pricing)
    horizon_s = arrivals_horizon_s(setup)
    run = run_serving_fast(request_source(setup.workload), scheduler, pricer.shape_time_s,
                           pipeline_depth=plan.num_stages, replicas=setup.replicas, router=setup.router, detail=detail,
                           progress=_progress(horizon_s, progress))
    record = ServingRunRecord(source="simulated", experiment=setup.experiment.raw, plan=plan.to_dict(),
                              scheduler=scheduler, run=run, router=setup.router,
                              environment={"profile": basis.profile_label})
    metrics = serving_metrics(run.records, num_gpus=plan.num_devices * setup.replicas, slos=setup.slos,
                              samples=run.samples)
    return ServingPrediction(plan_name, plan, scheduler, record, metrics, pricer)
