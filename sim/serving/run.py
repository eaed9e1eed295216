"""Simulate a serving experiment on one plan: requests from the workload, the iteration scheduler of
:mod:`serving.scheduler` on every replica, iterations priced by :class:`IterationPricer`, the event
driver (a pipeline keeps as many iterations in flight as it has stages).

The run is :mod:`serving.fast`'s (``driver="fast"``): the reference driver's run exactly (every
request's timestamps, every iteration, every state sample; ``tests/sim/test_serving_fast_sim.py``
compares the two), at a cost per iteration that does not grow with the requests decoding. The fast
driver covers everything a serving setup can say (each policy, router, source and pipeline depth);
what it cannot take is an iteration time given per stage (a measured run's, ``serving.replay``), which
the simulator's pricer never gives, so there is nothing here to fall back from. ``driver="reference"``
runs :func:`serving.driver.run_serving` itself (the definition the fast path is tested against).

``detail`` says what the fast run keeps: ``trace`` every iteration's plan (the run record of
``serving.run_record`` in full), ``records`` every request's timestamps and the iterations as columns
(the reference keeps ``trace`` only). For runs too large to keep token times,
``serving.fast.run.summarize_serving`` keeps a summary. Every stage pass is priced exactly unless
``token_grid`` (:mod:`sim.serving.token_grid`: within 1e-4, relative, of exact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from serving.batch import IterationPlan
from serving.driver import ServingRun, run_serving
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
from topology.errors import LayerwiseError
from topology.plan import Plan

Progress = Callable[[float, str], None]  # (fraction of the arrivals' time span reached, a short note)
DETAILS = ("trace", "records")
DRIVERS = ("fast", "reference")
PROGRESS_EVERY = 2048  # iterations between progress calls of the reference driver


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


def _reference_time(pricer: IterationPricer, report: Callable[[float, int], None] | None
                    ) -> Callable[[IterationPlan], float]:
    """The pricer on plans, reporting progress every ``PROGRESS_EVERY`` iterations (as the fast driver does)."""
    if report is None:
        return pricer
    count = 0

    def timed(plan: IterationPlan) -> float:
        nonlocal count
        count += 1
        if count % PROGRESS_EVERY == 0:
            report(plan.scheduled_s, count)
        return pricer(plan)

    return timed


def arrivals_horizon_s(setup: ServingSetup) -> float:
    """The last arrival of an open-loop workload (0 for a closed loop: its span is not known ahead)."""
    source = request_source(setup.workload)
    if isinstance(source, OpenLoopColumns):
        return float(source.arrival_s[-1]) if len(source) else 0.0
    return max((spec.arrival_s for spec in source.initial_requests()), default=0.0)


def simulate_serving(setup: ServingSetup, basis: Basis, plan_name: str, plan: Plan,
                     progress: Progress | None = None, *, detail: str = "trace", driver: str = "fast",
                     token_grid: bool = False) -> ServingPrediction:
    """Serve the setup's requests on ``setup.replicas`` copies of ``plan`` and measure them (module docstring)."""
    one_of("detail", detail, DETAILS)
    one_of("driver", driver, DRIVERS)
    if driver == "reference" and detail != "trace":
        raise LayerwiseError("detail", f"the reference driver keeps every iteration's plan (trace), not {detail!r}")
    scheduler = setup.scheduler_for(plan)
    pricer = iteration_pricer(basis, plan, token_grid=token_grid)
    report = _progress(arrivals_horizon_s(setup), progress)
    source = request_source(setup.workload)
    if driver == "fast":
        run = run_serving_fast(source, scheduler, pricer.shape_time_s, pipeline_depth=plan.num_stages,
                               replicas=setup.replicas, router=setup.router, detail=detail, progress=report)
    else:
        run = run_serving(source, scheduler, _reference_time(pricer, report), pipeline_depth=plan.num_stages,
                          replicas=setup.replicas, router=setup.router)
    record = ServingRunRecord(source="simulated", experiment=setup.experiment.raw, plan=plan.to_dict(),
                              scheduler=scheduler, run=run, router=setup.router,
                              environment={"profile": basis.profile_label})
    metrics = serving_metrics(run.records, num_gpus=plan.num_devices * setup.replicas, slos=setup.slos,
                              samples=run.samples)
    return ServingPrediction(plan_name, plan, scheduler, record, metrics, pricer)
