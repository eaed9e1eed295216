"""The units of work a capacity search hands to its runners (local processes or Ray), and what they return.

Two kinds, each a plain value in and a plain value out (picklable, deterministic):

* :class:`FloorTask`: price one replica plan's iteration floor (:mod:`sim.capacity.floor`);
* :class:`GroupTask`: find the capacity of a group of deployments that share their plans, replicas,
  router and chunking (they differ in ``max_num_seqs`` and ``max_num_batched_tokens``), one after the
  other, so that a run of one can stand for a run of another (:mod:`sim.capacity.reuse`) and the
  plan's iteration prices are already known.

Both read the search's fixed inputs (:class:`CapacityContext`: the serving setup, the basis, the SLOs)
from the worker, where a runner installed them once (:func:`install_context`), and keep one iteration
pricer per plan for the worker's life (its prices are pure functions of the plan and the basis).
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from serving.disaggregated import Pool
from serving.scheduler_config import SchedulerConfig
from serving.setup import ServingSetup
from serving.slo import SloSpec
from sim.capacity.floor import IterationFloor, floor_token_counts, measure_floor
from sim.capacity.grid import RateGrid
from sim.capacity.kv_transfer import KvTransferPricer, placed_pricer
from sim.capacity.probe import ProbeResult, probe_aggregated, probe_disaggregated
from sim.capacity.rate_search import RESOLVED, RateSearch, search_rate
from sim.capacity.reuse import same_run
from sim.capacity.space import Deployment, ReplicaPlan
from sim.costs.build import build_cost_model
from sim.inputs import Basis
from sim.serving.iteration_cost import IterationPricer
from sim.serving.run import iteration_pricer
from topology.partition.space import Layout

RANK = "rank"  # resolve capacities that could enter the top K
AT_RATE = "at-rate"  # does it serve the asked rate? then resolve its capacity above it
CANNOT_SERVE = "cannot serve the rate"
INITIAL_GUESS_RATIO = 0.5  # capacity / bound before any deployment of the task is resolved
ROUGH_STEP_FACTOR = 1.25  # the first probing step of a rough guess, as a rate ratio
CLOSE_STEP_FACTOR = 1.06  # ... of a guess learned from the task's resolved deployments


@dataclass(frozen=True)
class CapacityContext:
    """The search's fixed inputs, installed once per worker under ``key``."""

    key: str
    setup: ServingSetup
    basis: Basis
    slos: SloSpec
    max_waiting_fraction: float


_contexts: dict[str, CapacityContext] = {}  # this process's installed contexts (a runner's worker state)
_pricers: dict[tuple[str, Layout], IterationPricer] = {}  # one pricer per plan, for the process's life
_kv_pricers: dict[tuple[str, str], KvTransferPricer] = {}  # one per disaggregated deployment's placement


def install_context(context: CapacityContext) -> None:
    """Make ``context`` available to the tasks this process runs (a runner calls it once per worker)."""
    _contexts[context.key] = context


def context_for(key: str) -> CapacityContext:
    """The context installed under ``key`` in this process."""
    return _contexts[key]


def installed(key: str) -> bool:
    return key in _contexts


def _pricer(context: CapacityContext, plan: ReplicaPlan) -> IterationPricer:
    key = (context.key, plan.layout)
    if key not in _pricers:
        _pricers[key] = iteration_pricer(context.basis, plan.plan)
    return _pricers[key]


def kv_pricer(context: CapacityContext, deployment: Deployment) -> KvTransferPricer:
    """The KV transfer times of a disaggregated deployment, its replicas placed on the cluster
    (:func:`sim.capacity.kv_transfer.placed_pricer`), priced by the basis's link model."""
    assert deployment.decode_plan is not None
    key = (context.key, f"{deployment.describe_plan()} x{deployment.describe_replicas()}")
    if key not in _kv_pricers:
        experiment = context.basis.experiment
        cost = build_cost_model(experiment.cluster, context.basis.profile, False)
        _kv_pricers[key] = placed_pricer(deployment.plan.plan, deployment.replicas, deployment.decode_plan.plan,
                                         deployment.decode_replicas, experiment.model, experiment.cluster, cost)
    return _kv_pricers[key]


def probe_deployment(context: CapacityContext, job: DeploymentJob, index: int) -> ProbeResult:
    """Simulate ``job``'s deployment at grid index ``index`` (aggregated or disaggregated)."""
    deployment = job.deployment
    plan, rate_per_s = deployment.plan, job.grid.rate_per_s(index)
    if deployment.decode_plan is None:
        return probe_aggregated(context.setup.workload, rate_per_s, index, job.scheduler, _pricer(context, plan),
                                plan.stages, deployment.replicas, deployment.router, deployment.gpus, context.slos,
                                context.max_waiting_fraction)
    decode = deployment.decode_plan
    return probe_disaggregated(context.setup.workload, rate_per_s, index,
                               Pool(job.scheduler, deployment.replicas, plan.stages, _pricer(context, plan)),
                               Pool(job.scheduler, deployment.decode_replicas, decode.stages, _pricer(context, decode)),
                               deployment.router, kv_pricer(context, deployment), deployment.gpus, context.slos,
                               context.max_waiting_fraction)


@dataclass(frozen=True)
class FloorTask:
    context_key: str
    plan: ReplicaPlan
    max_tokens: int
    extra_tokens: tuple[int, ...]  # every token budget of the space (the floor's step ends)
    graph_size_lists: tuple[tuple[int, ...], ...]


def run_floor_task(task: FloorTask) -> IterationFloor:
    context = _contexts[task.context_key]
    counts = floor_token_counts(task.max_tokens, task.extra_tokens)
    return measure_floor(_pricer(context, task.plan), counts, task.graph_size_lists)


@dataclass(frozen=True)
class DeploymentJob:
    """One deployment to resolve: its scheduler, rate grid and what the bound allows (indices)."""

    deployment: Deployment
    scheduler: SchedulerConfig
    grid: RateGrid
    top: int  # the bound's index
    floor: int  # the lowest index worth testing
    bound_per_s: float


@dataclass(frozen=True)
class GroupTask:
    context_key: str
    jobs: tuple[DeploymentJob, ...]
    mode: str  # RANK or AT_RATE
    ranked: tuple[int, ...]  # RANK: the best capacity indices known (best first), for the threshold
    top_k: int


@dataclass(frozen=True)
class DeploymentOutcome:
    """What a task found for one deployment: ``status`` (rate_search's, or CANNOT_SERVE), the capacity
    index when resolved, and every probe (simulated or stood in for) in order."""

    key: str
    status: str
    capacity: int | None
    probes: tuple[ProbeResult, ...]

    @property
    def simulated(self) -> int:
        return sum(1 for probe in self.probes if not probe.stood_in)


def _threshold(ranked: list[int], top_k: int) -> int | None:
    return ranked[top_k - 1] if len(ranked) >= top_k else None


class _Group:
    """A task's state: the probes of each deployment by index (for reuse) and the guesses learned."""

    def __init__(self, task: GroupTask, context: CapacityContext) -> None:
        self.task, self.context = task, context
        self.done: list[tuple[DeploymentJob, dict[int, ProbeResult]]] = []
        self.ratios: list[float] = []  # capacity / bound of the resolved deployments

    def probe(self, job: DeploymentJob, probes: dict[int, ProbeResult], index: int) -> bool:
        if index in probes:
            return probes[index].met
        for other, found in self.done:
            earlier = found.get(index)
            if earlier is not None and earlier.limits is not None and same_run(other.scheduler, earlier.limits,
                                                                                 job.scheduler):
                probes[index] = dataclasses.replace(earlier, wall_s=0.0, stood_in=other.deployment.key)
                return earlier.met
        result = probe_deployment(self.context, job, index)
        probes[index] = result
        return result.met

    def guess(self, job: DeploymentJob) -> tuple[int, int]:
        """Where to start and the first step: a ratio of the bound learned from this task, or a rough one."""
        ratio = statistics.median(self.ratios) if self.ratios else INITIAL_GUESS_RATIO
        factor = CLOSE_STEP_FACTOR if self.ratios else ROUGH_STEP_FACTOR
        rate = job.bound_per_s * ratio
        guess = job.grid.index_at_or_below(rate) if rate > 0 else job.floor
        return guess, job.grid.steps_for_factor(factor)

    def resolve(self, job: DeploymentJob, threshold: int | None, at_rate: bool) -> DeploymentOutcome:
        probes: dict[int, ProbeResult] = {}
        key = job.deployment.key
        if at_rate:
            if job.top < 0 or not self.probe(job, probes, 0):
                return DeploymentOutcome(key, CANNOT_SERVE, None, tuple(probes.values()))
            threshold = 0
        guess, step = self.guess(job)
        search = RateSearch(top=job.top, floor=job.floor, guess=guess, threshold=threshold, first_step=step)
        outcome = search_rate(lambda index: self.probe(job, probes, index), search)
        self.done.append((job, probes))
        if outcome.status == RESOLVED and outcome.capacity is not None:
            self.ratios.append(job.grid.rate_per_s(outcome.capacity) / job.bound_per_s)
        return DeploymentOutcome(key, outcome.status, outcome.capacity,
                                 tuple(probes[i] for i in _order(probes, outcome.probed)))


def _order(probes: dict[int, ProbeResult], searched: tuple[int, ...]) -> list[int]:
    """Indices in the order they were decided (the at-rate probe first)."""
    seen = [index for index in probes if index not in searched]
    return seen + [index for index in searched if index in probes]


def run_group_task(task: GroupTask) -> tuple[DeploymentOutcome, ...]:
    """Resolve every deployment of the task in order (module docstring); in RANK mode the threshold
    rises with the task's own resolved capacities (deterministically: they are the task's)."""
    context = _contexts[task.context_key]
    group = _Group(task, context)
    ranked = list(task.ranked)
    outcomes = []
    for job in task.jobs:
        if task.mode == AT_RATE:
            outcomes.append(group.resolve(job, None, at_rate=True))
            continue
        threshold = _threshold(ranked, task.top_k)
        outcome = group.resolve(job, threshold, at_rate=False)
        outcomes.append(outcome)
        if outcome.capacity is not None:
            ranked = sorted([*ranked, outcome.capacity], reverse=True)
    return tuple(outcomes)
