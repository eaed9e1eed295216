"""``capacity_search``: the deployment that meets the SLOs most cheaply, by bound, pruning and bisection.

1. **Space** (:mod:`sim.capacity.plans`, :mod:`sim.capacity.candidates`): replica plans x scheduler
   settings x replica counts x routers (and disaggregated prefill/decode pools), within the GPU budget.
2. **Bound** (:mod:`sim.capacity.bound`): each plan's iteration floor is priced once (a task per plan);
   each deployment gets a closed-form capacity bound, and those that miss an SLO even unloaded, or
   cannot hold every request's KV, are set aside without a simulation.
3. **Simulation of the survivors** (:mod:`sim.capacity.tasks`): for each, exponential probing and
   bisection on the rate grid (:mod:`sim.capacity.rate_search`), runs stopped once their verdict is
   known (:mod:`sim.capacity.watch`), a run standing for another setting's run where it provably is
   the same run (:mod:`sim.capacity.reuse`).
4. **Objectives** (:mod:`sim.capacity.options`):

   * ``rate-per-gpu``: deployments in order of their bound per GPU, in waves of ``wave`` tasks; after
     each wave the K-th best capacity found (``top``) is the threshold: a deployment whose bound is
     below it is pruned unsimulated, and one that fails at the threshold stops there. So the top K
     (ties included) are exact: every other deployment is proven below the K-th.
   * ``fewest-gpus``: GPU counts in increasing order; at each, every deployment whose bound reaches the
     rate is simulated at the rate; at the first count where one meets the SLOs, those that do are
     resolved (their capacity above the rate) and ranked; larger counts are not needed.

Waves, not the runner, decide what is simulated: the same search gives the same result on one
process, several, or a Ray cluster.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from serving.at_rate import workload_rate_per_s
from serving.setup import ServingSetup
from serving.sources import open_loop_requests
from sim.capacity.bound import RequestShapes
from sim.capacity.candidates import Candidate, aggregated_candidates, disaggregated_candidates, valid_knobs
from sim.capacity.crossover import Crossover, assemble, make_tasks, run_crossover_task, swept_slo
from sim.capacity.floor import IterationFloor
from sim.capacity.grid import RateGrid
from sim.capacity.options import FEWEST_GPUS, CapacityOptions
from sim.capacity.plans import replica_plans
from sim.capacity.probe import ProbeResult, served_requests
from sim.capacity.result import PRUNED_BY_BOUND, RESOLVED, CapacityResult, Finding, SearchCounts
from sim.capacity.runners import Runner
from sim.capacity.settings import knob_setup
from sim.capacity.space import AGGREGATED, DISAGGREGATED, ReplicaPlan
from sim.capacity.tasks import (
    AT_RATE,
    RANK,
    CapacityContext,
    DeploymentJob,
    DeploymentOutcome,
    FloorTask,
    GroupTask,
    run_floor_task,
    run_group_task,
)
from sim.inputs import Basis
from topology.accuracy import describe_band
from topology.errors import LayerwiseError
from topology.partition.space import Layout

FLOOR_FACTOR = 100.0  # a deployment failing at 1/100 of its bound has no capacity worth resolving
NOT_NEEDED = "not needed: more GPUs than the answer"
Progress = Callable[[str], None]
RunnerFactory = Callable[[CapacityContext], Runner]


@dataclass(frozen=True)
class _Job:
    candidate: Candidate
    job: DeploymentJob


class _Tracker:
    """Counts and the progress line: deployments done, the best so far, an estimate of the time left."""

    def __init__(self, total: int, say: Progress, per_gpu: bool) -> None:
        self.total, self.say, self.per_gpu = total, say, per_gpu
        self.done = 0
        self.best = ""
        self.best_value = 0.0
        self.started = time.perf_counter()

    def settle(self, count: int) -> None:
        self.done += count

    def report(self, remaining: int) -> None:
        elapsed = time.perf_counter() - self.started
        left = elapsed / max(1, self.done) * remaining
        best = f", best so far {self.best}" if self.best else ""
        self.say(f"{self.done:,}/{self.total:,} deployments settled{best}; about {_duration(left)} left "
                 f"at most ({_duration(elapsed)} so far)")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _shapes(setup: ServingSetup) -> tuple[RequestShapes, int, int]:
    requests = open_loop_requests(setup.workload)
    served = served_requests(requests, setup.scheduler.max_model_len_tokens)
    if not served:
        raise LayerwiseError("workload", f"every request is longer than max_model_len_tokens "
                                         f"{setup.scheduler.max_model_len_tokens}")
    shapes = RequestShapes(np.asarray([s.prompt_tokens for s in served], dtype=np.int64),
                           np.asarray([s.output_tokens for s in served], dtype=np.int64))
    return shapes, len(requests), len(requests) - len(served)


def _smallest_replica_gpus(setup: ServingSetup, basis: Basis) -> int | None:
    everything = replica_plans(setup, basis, setup.experiment.cluster.num_devices, None, 0)
    return min((plan.gpus for plan in everything.plans), default=None)


def _check_budget(setup: ServingSetup, basis: Basis, options: CapacityOptions) -> None:
    """One line, before any work, when the budget cannot hold one replica (the uniform TP x PP family
    holds the plans of fewest GPUs: an even split needs the least HBM per GPU)."""
    model = setup.experiment.model.name
    smallest = _smallest_replica_gpus(setup, basis)
    if smallest is None:
        raise LayerwiseError("plans", f"no plan of {model} fits {setup.experiment.cluster.name}'s HBM")
    if smallest > options.gpu_budget:
        raise LayerwiseError("--gpu-budget", f"{options.gpu_budget} GPU{'s' if options.gpu_budget > 1 else ''} "
                             f"is below one replica: the smallest plan of {model} needs {smallest} GPUs")


def _plans(setup: ServingSetup, basis: Basis, options: CapacityOptions, say: Progress) -> tuple[ReplicaPlan, ...]:
    space = options.space
    found = replica_plans(setup, basis, options.gpu_budget, space.replica_gpus, space.uneven, say)
    if found.plans:
        return found.plans
    smallest = _smallest_replica_gpus(setup, basis)
    gpus = list(space.replica_gpus or ())
    raise LayerwiseError("--replica-gpus", f"no plan of {setup.experiment.model.name} with {gpus} GPUs fits "
                                           f"(the smallest needs {smallest})")


def _floors(runner: Runner, context: CapacityContext, plans: tuple[ReplicaPlan, ...], setup: ServingSetup,
            budgets: tuple[int, ...], graph_lists: tuple[tuple[int, ...], ...], say: Progress
            ) -> dict[Layout, IterationFloor]:
    tasks = [FloorTask(context.key, plan, max(budgets), budgets, graph_lists) for plan in plans]
    done = [0]

    def on_done(index: int, result: object) -> None:
        done[0] += 1
        say(f"bounds: iteration floor of {done[0]}/{len(tasks)} plans priced")

    floors = runner.map(run_floor_task, tasks, on_done)
    return {plan.layout: floor for plan, floor in zip(plans, floors, strict=True)}


def _band(basis: Basis, plan: ReplicaPlan) -> tuple[str, str]:
    found, unvalidated = basis.band_for(plan.plan)
    text = describe_band(found.band, unvalidated)
    if found.band is None:
        return ("outside measured shapes" if found.note.startswith("outside") else "none"), text
    return f"±{found.band.half_width:.1%}" + (" (partial)" if unvalidated else ""), text


def _job(candidate: Candidate, grid: RateGrid, floor_index: int | None) -> DeploymentJob:
    assert candidate.scheduler is not None
    top = grid.index_at_or_below(candidate.bound_per_s)
    floor = top - grid.steps_for_factor(FLOOR_FACTOR) if floor_index is None else floor_index
    return DeploymentJob(candidate.deployment, candidate.scheduler, grid, top, floor, candidate.bound_per_s)


def _grouped(jobs: list[_Job]) -> list[list[_Job]]:
    """Jobs by their group (best bound first within a group, groups by their best bound)."""
    groups: dict[tuple[object, ...], list[_Job]] = {}
    for item in sorted(jobs, key=lambda j: (-j.job.top, j.job.deployment.key)):
        groups.setdefault(item.job.deployment.group, []).append(item)
    return sorted(groups.values(), key=lambda g: (-g[0].job.top, g[0].job.deployment.key))


class _Search:
    """One search's state (module docstring)."""

    def __init__(self, runner: Runner, context: CapacityContext, options: CapacityOptions, tracker: _Tracker):
        self.runner, self.context, self.options, self.tracker = runner, context, options, tracker
        self.outcomes: dict[str, DeploymentOutcome] = {}
        self.statuses: dict[str, str] = {}
        self.grids: dict[str, RateGrid] = {}

    def run_wave(self, tasks: list[GroupTask], remaining: int) -> None:
        def on_done(index: int, result: tuple[DeploymentOutcome, ...]) -> None:
            self.tracker.settle(len(result))
            for outcome in result:
                if outcome.capacity is not None:
                    grid = self.grids[outcome.key]
                    self._note_best(outcome, grid)
            self.tracker.report(remaining - self.tracker.done)

        for result in self.runner.map(run_group_task, tasks, on_done):
            for outcome in result:
                self.outcomes[outcome.key] = outcome

    def _note_best(self, outcome: DeploymentOutcome, grid: RateGrid) -> None:
        assert outcome.capacity is not None
        rate = grid.rate_per_s(outcome.capacity)
        per_gpu = self.options.objective.kind != FEWEST_GPUS
        value = rate / grid.base_per_s if per_gpu else rate
        if value > self.tracker.best_value:
            self.tracker.best_value = value
            unit = "requests/s per GPU" if per_gpu else "requests/s"
            self.tracker.best = f"{value:.4g} {unit} ({outcome.key})"

    def rank(self, candidates: list[Candidate]) -> None:
        options = self.options
        jobs = []
        for candidate in candidates:
            grid = RateGrid(float(candidate.deployment.gpus), options.resolution)
            self.grids[candidate.deployment.key] = grid
            jobs.append(_Job(candidate, _job(candidate, grid, None)))
        pending = _grouped(jobs)
        ranked: list[int] = []
        total = self.tracker.total  # done counts the infeasible, settled before any wave
        while pending:
            threshold = ranked[options.top - 1] if len(ranked) >= options.top else None
            wave: list[GroupTask] = []
            while pending and len(wave) < options.wave:
                group = pending.pop(0)
                kept = [j.job for j in group if threshold is None or j.job.top >= threshold]
                for j in group:
                    if threshold is not None and j.job.top < threshold:
                        self.statuses[j.job.deployment.key] = PRUNED_BY_BOUND
                        self.tracker.settle(1)
                if kept:
                    wave.append(GroupTask(self.context.key, tuple(kept), RANK, tuple(ranked), options.top))
            if wave:
                self.run_wave(wave, total)
                ranked = sorted((o.capacity for o in self.outcomes.values() if o.capacity is not None), reverse=True)

    def fewest(self, candidates: list[Candidate]) -> None:
        options = self.options
        rate = options.objective.rate_per_s
        assert rate is not None
        total = self.tracker.total
        for gpus in sorted({c.deployment.gpus for c in candidates}):
            level = [c for c in candidates if c.deployment.gpus == gpus]
            jobs = []
            for candidate in level:
                key = candidate.deployment.key
                self.grids[key] = grid = RateGrid(rate, options.resolution)
                if candidate.bound_per_s < rate:
                    self.statuses[key] = PRUNED_BY_BOUND
                    self.tracker.settle(1)
                    continue
                jobs.append(_Job(candidate, _job(candidate, grid, 0)))
            tasks = [GroupTask(self.context.key, tuple(j.job for j in group), AT_RATE, (), options.top)
                     for group in _grouped(jobs)]
            for start in range(0, len(tasks), options.wave):
                self.run_wave(tasks[start:start + options.wave], total)
            if any(self.outcomes[j.job.deployment.key].capacity is not None for j in jobs):
                for later in candidates:
                    if later.deployment.gpus > gpus:
                        self.statuses[later.deployment.key] = NOT_NEEDED
                return


def _findings(search: _Search, candidates: list[Candidate], basis: Basis, options: CapacityOptions
              ) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    bands: dict[str, tuple[str, str]] = {}
    found: list[Finding] = []
    for candidate in candidates:
        deployment = candidate.deployment
        key = deployment.key
        plan_key = deployment.plan.label
        if plan_key not in bands:
            bands[plan_key] = _band(basis, deployment.plan)
        band, band_text = bands[plan_key]
        limited = candidate.limited_by
        outcome = search.outcomes.get(key)
        probes: tuple[ProbeResult, ...]
        if candidate.infeasible:
            status, index, probes = f"infeasible: {candidate.infeasible}", None, ()
        elif outcome is None:
            status, index, probes = search.statuses.get(key, PRUNED_BY_BOUND), None, ()
        else:
            status, index, probes = outcome.status, outcome.capacity, outcome.probes
        grid = search.grids.get(key)
        rate = None if index is None or grid is None else grid.rate_per_s(index)
        found.append(Finding(deployment, status, index, rate, candidate.bound_per_s, limited, probes, band, band_text,
                             candidate.scheduler))
    return _ranked(found, options)


def _ranked(found: list[Finding], options: CapacityOptions) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    """The resolved findings in the objective's order, ranks shared by ties, cut after the K-th (ties kept)."""
    fewest = options.objective.kind == FEWEST_GPUS
    resolved = [f for f in found if f.status == RESOLVED and f.capacity_index is not None]
    if fewest and resolved:
        least = min(f.deployment.gpus for f in resolved)
        resolved = [f for f in resolved if f.deployment.gpus == least]

    def order(f: Finding) -> tuple[int, int, str]:
        assert f.capacity_index is not None
        return (-f.capacity_index, f.deployment.gpus, f.deployment.key)

    resolved.sort(key=order)
    ranked: list[Finding] = []
    for position, finding in enumerate(resolved):
        assert finding.capacity_index is not None
        previous = ranked[-1] if ranked else None
        tied = previous is not None and previous.capacity_index == finding.capacity_index
        rank = previous.rank if tied and previous is not None else position + 1
        if rank is not None and rank > options.top:
            break
        if tied and previous is not None and not previous.tied:
            ranked[-1] = dataclasses.replace(previous, tied=True)
        ranked.append(dataclasses.replace(finding, rank=rank, tied=tied))
    keys = {f.deployment.key for f in ranked}
    return tuple(ranked), tuple(f for f in found if f.deployment.key not in keys)


def _counts(candidates: list[Candidate], search: _Search, findings: tuple[Finding, ...]) -> SearchCounts:
    probes = [p for o in search.outcomes.values() for p in o.probes]
    return SearchCounts(
        deployments=len(candidates), infeasible=sum(1 for c in candidates if c.infeasible),
        pruned_by_bound=sum(1 for f in findings if f.status == PRUNED_BY_BOUND),
        resolved=sum(1 for o in search.outcomes.values() if o.status == RESOLVED),
        below_threshold=sum(1 for o in search.outcomes.values() if o.status == "below threshold"),
        probes_simulated=sum(1 for p in probes if not p.stood_in),
        probes_stood_in=sum(1 for p in probes if p.stood_in),
        probes_stopped_early=sum(1 for p in probes if p.stopped_early and not p.stood_in),
        iterations_simulated=sum(p.iterations for p in probes if not p.stood_in))


def _best_of_kind(kind: str, candidates: list[Candidate], search: _Search) -> Candidate | None:
    """The kind's deployment of most requests/s per GPU found by the search, else of the highest bound per GPU."""
    mine = [c for c in candidates if c.deployment.kind == kind]

    def found_per_gpu(candidate: Candidate) -> float:
        outcome = search.outcomes.get(candidate.deployment.key)
        if outcome is None or outcome.capacity is None:
            return -1.0
        return search.grids[candidate.deployment.key].rate_per_s(outcome.capacity) / candidate.deployment.gpus

    resolved = [c for c in mine if found_per_gpu(c) >= 0]
    if resolved:
        return max(resolved, key=lambda c: (found_per_gpu(c), -c.deployment.gpus, c.deployment.key))
    return max(mine, key=lambda c: (c.bound_per_s / c.deployment.gpus, c.deployment.key), default=None)


def _crossover(runner: Runner, context: CapacityContext, search: _Search, feasible: list[Candidate],
               options: CapacityOptions, say: Progress) -> tuple[Crossover | None, str]:
    """Sweep the TPOT bound for the best deployment of each kind (:mod:`sim.capacity.crossover`)."""
    slo = swept_slo(options.slos)
    if slo is None:
        return None, "no crossover: give a TPOT SLO (e.g. --slo tpot_p99_ms=50) to sweep its bound"
    aggregated = _best_of_kind(AGGREGATED, feasible, search)
    disaggregated = _best_of_kind(DISAGGREGATED, feasible, search)
    if aggregated is None or disaggregated is None:
        missing = "aggregated" if aggregated is None else "disaggregated"
        return None, f"no crossover: no {missing} deployment can meet the SLOs"
    jobs = [_job(c, RateGrid(float(c.deployment.gpus), options.resolution), None) for c in (aggregated, disaggregated)]
    say(f"crossover: sweeping the {slo.metric.upper()} {slo.percentile} bound for the best deployment of each kind")
    sweeps = runner.map(run_crossover_task, make_tasks(context, jobs[0], jobs[1], slo, options.resolution))
    return assemble(jobs[0], jobs[1], slo, sweeps), ""


def _host_time_note(basis: Basis) -> str:
    measured = "serving_iteration_host_s" in (basis.profile.params.sim_params if basis.profile else {})
    return ("the host time per iteration is measured" if measured
            else "the host time per iteration is the 1 ms placeholder (unmeasured on this profile)")


def capacity_search(setup: ServingSetup, basis: Basis, options: CapacityOptions, make_runner: RunnerFactory,
                    progress: Progress | None = None) -> CapacityResult:
    """Search the serving setup's deployments (module docstring)."""
    started = time.perf_counter()
    say = progress or (lambda message: None)
    workload_rate_per_s(setup.workload)  # refuses a closed loop (it has no rate to search over)
    shapes, requests, rejected = _shapes(setup)
    space = options.space
    knobs, notes = valid_knobs(setup, space.max_num_seqs, space.max_num_batched_tokens, space.chunked)
    if not knobs:
        raise LayerwiseError("--max-num-batched-tokens", f"no scheduler setting is valid: {notes[0]}")
    _check_budget(setup, basis, options)
    context = CapacityContext(f"{os.getpid()}-{id(setup)}-{time.time_ns()}", setup, basis, options.slos,
                              options.max_waiting_fraction)
    budgets = tuple(sorted({k.max_num_batched_tokens for k in knobs}))
    graph_lists = tuple(sorted({knob_setup(setup, k).scheduler.cuda_graph_sizes for k in knobs}))
    runner = make_runner(context)  # first: an address where no Ray cluster answers fails before any work
    try:
        plans = _plans(setup, basis, options, say)
        floors = _floors(runner, context, plans, setup, budgets, graph_lists, say)
        candidates = aggregated_candidates(setup, plans, floors, knobs, options.gpu_budget, space.replicas,
                                           space.routers, shapes, options.slos)
        if space.disaggregated:
            candidates += disaggregated_candidates(setup, plans, floors, knobs, options.gpu_budget, space.routers[0],
                                                   shapes, options.slos)
        feasible = [c for c in candidates if not c.infeasible]
        tracker = _Tracker(len(candidates), say, options.objective.kind != FEWEST_GPUS)
        tracker.settle(len(candidates) - len(feasible))
        search = _Search(runner, context, options, tracker)
        if options.objective.kind == FEWEST_GPUS:
            search.fewest(feasible)
        else:
            search.rank(feasible)
        crossover, crossover_note = None, ""
        if space.disaggregated:
            crossover, crossover_note = _crossover(runner, context, search, feasible, options, say)
        description = runner.description
    finally:
        runner.close()
    ranked, others = _findings(search, candidates, basis, options)
    experiment = setup.experiment
    return CapacityResult(
        experiment=experiment.name, model=experiment.model.name, cluster=experiment.cluster.name, options=options,
        ranked=ranked, others=others, counts=_counts(candidates, search, (*ranked, *others)), requests=requests,
        rejected_over_max_len=rejected, notes=notes, parameters=basis.profile_label,
        host_time_note=_host_time_note(basis), runner=description, wall_s=time.perf_counter() - started,
        crossover=crossover, crossover_note=crossover_note)
