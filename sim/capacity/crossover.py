"""Where disaggregated serving overtakes aggregated serving: the capacity per GPU of the best deployment of
each kind as one SLO's bound is swept, the others fixed, and why the winner wins.

The swept SLO is the search's tightest TPOT SLO (its percentile; bounds ``SWEEP_FACTORS`` times the
given one). For each of the two deployments, a :class:`CrossoverTask` simulates it at grid rates with
every other SLO in force and the swept one at its loosest bound (a run stops early only when its verdict
is known for every bound), keeps each run, and bisects the rate grid once per bound on those runs
(:mod:`sim.capacity.rate_search`): the capacity at bound ``b`` is the highest grid rate whose run meets
the other SLOs with its TPOT percentile at most ``b``. Both deployments use the per-GPU rate grid, so
their capacities compare index to index.

Why, in numbers from the runs at each capacity: the aggregated deployment's **prefill interference** (the
fraction of its decode tokens computed in an iteration that also carried prefill tokens, which lengthens
those decode steps) against the disaggregated deployment's **KV transfer** (mean time from a request's
first token to its KV cache arriving at a decode replica, link queueing included) and its GPUs split
between pools.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from serving.slo import Slo, SloSpec
from sim.capacity.grid import RateGrid
from sim.capacity.probe import ProbeResult
from sim.capacity.rate_search import RESOLVED, RateSearch, search_rate
from sim.capacity.tasks import CapacityContext, DeploymentJob, context_for, probe_deployment

SWEEP_FACTORS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
FLOOR_FACTOR = 100.0


@dataclass(frozen=True)
class CrossoverTask:
    context_key: str
    job: DeploymentJob  # on the per-GPU grid
    metric: str
    percentile: str
    bounds_s: tuple[float, ...]


@dataclass(frozen=True)
class SweepPoint:
    """One deployment at one bound: its capacity (grid index, requests/s per GPU) and the run there."""

    bound_s: float
    capacity_index: int | None
    per_gpu: float | None
    at_capacity: ProbeResult | None


def _met(probe: ProbeResult, name: str, bound_s: float) -> bool:
    value = probe.latency_s(name)
    return probe.met and value is not None and value <= bound_s


def run_crossover_task(task: CrossoverTask) -> tuple[SweepPoint, ...]:
    """One deployment's capacity at every bound (module docstring)."""
    base = context_for(task.context_key)
    loosest = Slo(task.metric, task.percentile, max(task.bounds_s))  # measured; a run stops early only above it
    others = tuple(slo for slo in base.slos.slos if (slo.metric, slo.percentile) != (task.metric, task.percentile))
    context = dataclasses.replace(base, slos=SloSpec((*others, loosest)))
    job, name = task.job, f"{task.metric}_{task.percentile}"
    runs: dict[int, ProbeResult] = {}

    def run(index: int) -> ProbeResult:
        if index not in runs:
            runs[index] = probe_deployment(context, job, index)
        return runs[index]

    points = []
    for bound_s in task.bounds_s:
        search = RateSearch(top=job.top, floor=job.floor, guess=job.top, first_step=1)
        def meets(index: int, bound: float = bound_s) -> bool:
            return _met(run(index), name, bound)

        outcome = search_rate(meets, search)
        index = outcome.capacity if outcome.status == RESOLVED else None
        points.append(SweepPoint(bound_s, index, None if index is None else job.grid.rate_per_s(index)
                                 / job.grid.base_per_s, None if index is None else runs[index]))
    return tuple(points)


def per_gpu_job(job: DeploymentJob, resolution: float) -> DeploymentJob:
    """``job`` on the per-GPU grid, from its bound down to 1/100 of it."""
    grid = RateGrid(float(job.deployment.gpus), resolution)
    top = grid.index_at_or_below(job.bound_per_s)
    return dataclasses.replace(job, grid=grid, top=top, floor=top - grid.steps_for_factor(FLOOR_FACTOR))


def swept_slo(slos: SloSpec) -> Slo | None:
    """The SLO the crossover sweeps: the tightest TPOT SLO, or None without one."""
    tpot = [slo for slo in slos.slos if slo.metric == "tpot"]
    return min(tpot, key=lambda slo: slo.bound_s) if tpot else None


@dataclass(frozen=True)
class Crossover:
    """Both sweeps and the sentence that reads them (:func:`describe_crossover`)."""

    metric: str
    percentile: str
    aggregated: str  # deployment keys
    disaggregated: str
    aggregated_points: tuple[SweepPoint, ...]
    disaggregated_points: tuple[SweepPoint, ...]

    @property
    def winners(self) -> tuple[tuple[float, str], ...]:
        """Per bound: "disaggregated", "aggregated", "tie" or "neither" (by capacity per GPU)."""
        found = []
        for agg, dis in zip(self.aggregated_points, self.disaggregated_points, strict=True):
            a, d = agg.capacity_index, dis.capacity_index
            if a is None and d is None:
                winner = "neither"
            elif d is not None and (a is None or d > a):
                winner = "disaggregated"
            elif a is not None and (d is None or a > d):
                winner = "aggregated"
            else:
                winner = "tie"
            found.append((agg.bound_s, winner))
        return tuple(found)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g} ms"


def _capacity(point: SweepPoint) -> str:
    return "nothing" if point.per_gpu is None else f"{point.per_gpu:.4g}"


def _why(crossover: Crossover, at: int) -> str:
    agg, dis = crossover.aggregated_points[at], crossover.disaggregated_points[at]
    parts = []
    name = f"{crossover.metric}_{crossover.percentile}"
    if agg.at_capacity is not None and agg.at_capacity.mixed_decode_fraction is not None:
        value = agg.at_capacity.latency_s(name)
        parts.append(f"aggregated: {agg.at_capacity.mixed_decode_fraction:.0%} of its decode tokens share an "
                     f"iteration with prefill chunks (prefill interference; {crossover.metric.upper()} "
                     f"{crossover.percentile} {_ms(value) if value is not None else '-'} at its capacity)")
    elif agg.per_gpu is None:
        parts.append("aggregated: prefill interference keeps it above the bound at every rate")
    if dis.at_capacity is not None and dis.at_capacity.kv_wait_mean_s is not None:
        parts.append(f"disaggregated: decode replicas run decodes only, but each request waits "
                     f"{_ms(dis.at_capacity.kv_wait_mean_s)} on average for its KV transfer and the prefill "
                     f"GPUs never decode")
    elif dis.per_gpu is None:
        parts.append("disaggregated: its KV transfers and split pools keep it from meeting the SLOs at any rate")
    return "; ".join(parts)


def describe_crossover(crossover: Crossover) -> str:
    """Where the winner changes as the bound grows, with each side's capacity and why (module docstring)."""
    winners = crossover.winners
    slo = f"{crossover.metric.upper()} {crossover.percentile}"
    bounds = [bound for bound, _ in winners]
    head = (f"Crossover ({slo} bound swept from {_ms(bounds[0])} to {_ms(bounds[-1])}, other SLOs fixed; requests/s "
            f"per GPU, disaggregated {crossover.disaggregated} against aggregated {crossover.aggregated}): ")
    table = ", ".join(f"{_ms(b)}: {_capacity(d)} vs {_capacity(a)}" for (b, _), a, d in
                      zip(winners, crossover.aggregated_points, crossover.disaggregated_points, strict=True))
    changes = [i for i in range(1, len(winners)) if winners[i][1] != winners[i - 1][1]]
    decided = [(i, w) for i, (_, w) in enumerate(winners) if w in ("aggregated", "disaggregated")]
    if not decided:
        return head + f"neither kind wins at any bound ({table})."
    if len({w for _, w in decided}) == 1:
        winner = decided[0][1]
        return (head + f"no crossover in this range: {winner} wins wherever one does ({table}). Why, at "
                f"{_ms(bounds[decided[0][0]])}: {_why(crossover, decided[0][0])}.")
    first = changes[0]
    before, after = winners[first - 1], winners[first]
    sentence = (f"{before[1]} wins at bounds up to {_ms(before[0])}, {after[1]} from {_ms(after[0])}: the crossover "
                f"lies between them ({table}).")
    if len(changes) > 1:
        sentence += f" The winner changes {len(changes)} times in the sweep."
    return (head + sentence + f" Why, at {_ms(before[0])}: {_why(crossover, first - 1)}. At {_ms(after[0])}: "
            f"{_why(crossover, first)}.")


def crossover_bounds(slo: Slo) -> tuple[float, ...]:
    return tuple(slo.bound_s * factor for factor in SWEEP_FACTORS)


def make_tasks(context: CapacityContext, aggregated: DeploymentJob, disaggregated: DeploymentJob, slo: Slo,
               resolution: float) -> list[CrossoverTask]:
    bounds = crossover_bounds(slo)
    return [CrossoverTask(context.key, per_gpu_job(job, resolution), slo.metric, slo.percentile, bounds)
            for job in (aggregated, disaggregated)]


def assemble(aggregated: DeploymentJob, disaggregated: DeploymentJob, slo: Slo,
             sweeps: list[tuple[SweepPoint, ...]]) -> Crossover:
    return Crossover(slo.metric, slo.percentile, aggregated.deployment.key, disaggregated.deployment.key,
                     sweeps[0], sweeps[1])
