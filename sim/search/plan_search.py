"""``search_plans``: the fastest plan of an experiment, in two stages priced on one basis.

1. The closed-form twin scores the whole space (:mod:`sim.search.dp`: exact K best by dynamic
   programming, seeded with the uniform TP x PP family);
2. the event simulation runs the K best, the best of each family and the experiment's own plans;
   the answer is the event simulation's fastest plan that meets the limits.

Every plan, the twin's and the events', is priced with the basis's one cost model
(:class:`sim.inputs.Basis`); nothing here reads a file. :func:`optimal_partitioner` is the
``optimal`` partitioner of experiment files (its options: :mod:`sim.search.options`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sim.costs.stage import PriceMemo
from sim.inputs import Basis, SimInputs
from sim.parallel import map_parallel
from sim.search.dp import Geometry, Scored, k_best_layouts, score_layout
from sim.search.families import family_tp_choices, tp_pp_layouts
from sim.search.options import OPTIMAL, SearchOptions, check_options, spec_options
from sim.search.resolution import resolution_statement
from sim.search.result import Candidate, Prediction, SearchResult
from sim.search.tables import StageTable
from sim.simulate import estimate, simulate
from topology.accuracy import plan_components
from topology.errors import LayerwiseError
from topology.experiment import Experiment, Optimizer, build_plan
from topology.partition.space import Layout, count_layouts, layout_of_plan, microbatch_choices, plan_of_layout
from topology.plan import Plan
from topology.results import RunResult

Progress = Callable[[str], None]


def _twin_prediction(scored: Scored, tokens_per_iteration: int) -> Prediction:
    return Prediction("twin", tokens_per_iteration / scored.step_s, scored.step_s,
                      scored.step_s if scored.ttft_s is None else None, scored.ttft_s)


def _full_prediction(result: RunResult, estimator: str) -> Prediction:
    m = result.metrics
    details = m.simulation
    assert details is not None
    tightest = min(details.residency, key=lambda e: e.weights_bytes)
    return Prediction(estimator, m.tokens_per_s, m.step_time_s, m.tpot_s, m.ttft_s,
                      details.breakdown.dominant, details.breakdown.seconds(),
                      details.communication.events_per_batch, details.l2_fit,
                      (tightest.weights_bytes, tightest.capacity_bytes, tightest.streamed_bytes_per_pass))


def _simulate(job: tuple[SimInputs, bool]) -> Prediction:
    """One finalist by the event simulation, or (``events`` False) by the twin with its full breakdown."""
    inputs, events = job
    if not events:
        return _full_prediction(estimate(inputs), "twin")
    return _full_prediction(simulate(inputs), "events")


class _Context:
    """The experiment's fixed inputs, shared by every step of one search."""

    def __init__(self, basis: Basis, options: SearchOptions) -> None:
        self.basis, self.options = basis, options
        experiment = self.experiment = basis.experiment
        workload, cluster, model = experiment.workload, experiment.cluster, experiment.model
        self.cost = basis.cost
        self.max_gpus = options.gpus if options.gpus is not None else cluster.num_devices
        self.geometry = Geometry(model.num_layers, cluster.gpus_per_node, self.max_gpus,
                                 family_tp_choices(options.family, model, cluster), workload.phase)
        counts = (options.microbatches,) if options.microbatches else microbatch_choices(workload)
        priced = PriceMemo()  # operator prices do not depend on the microbatch count's table
        self.tables = {m: StageTable(model, cluster, workload, self.cost, m, priced) for m in counts}
        self.regime = basis.regime
        self.band = basis.band

    def candidate(self, origin: str, scored: Scored, plan: Plan | None = None, ties: int = 0) -> Candidate:
        e = self.experiment
        if plan is None:
            note = f"plan search ({self.options.family}): twin step {scored.step_s * 1e3:.6g} ms"
            plan = plan_of_layout(scored.layout, e.model, e.cluster, e.workload, OPTIMAL, notes=(note,))
        components = plan_components(plan, e.cluster, loops_back=e.workload.phase == "decode")
        found, unvalidated = self.basis.band_for(plan)
        return Candidate(origin, scored.layout, plan, scored,
                         _twin_prediction(scored, e.workload.tokens_per_iteration), None, ties,
                         components, unvalidated, found.band, found.note)

    def score(self, layout: Layout) -> Scored | None:
        table = self.tables.get(layout.microbatches)
        if table is None:
            return None
        return score_layout(layout, table, self.geometry.gpus_per_node, self.geometry.phase)


def _family_seeds(context: _Context) -> list[Scored]:
    e, options = context.experiment, context.options
    allowed = context.geometry.tp_choices
    layouts = tp_pp_layouts(e.model, e.cluster, e.workload, context.max_gpus, allowed, tuple(context.tables))
    return [s for s in (context.score(layout) for layout in layouts) if s is not None
            and (options.max_ttft_s is None or s.ttft_s is None or s.ttft_s <= options.max_ttft_s)]


def _experiment_candidates(context: _Context) -> list[Candidate]:
    """The experiment's own plans that lie in this search's space (so the answer is never worse)."""
    found = []
    for name in context.experiment.plan_names:
        try:
            plan = build_plan(context.experiment, name)
            layout = layout_of_plan(plan, context.experiment.cluster)
        except LayerwiseError:
            continue  # e.g. needs the search itself, does not fit HBM, or cannot be placed
        if layout.num_gpus > context.max_gpus or not set(layout.tp_degrees) <= set(context.geometry.tp_choices):
            continue
        scored = context.score(layout)
        if scored is not None:
            found.append(context.candidate(f"experiment: {name}", scored, plan=plan))
    return found


def _count_ties(ranked: list[Scored]) -> list[tuple[Scored, int]]:
    """One row per distinct twin step (the simplest layout first), with how many others tie with it."""
    groups: list[list[Scored]] = []
    for item in ranked:
        for group in groups:
            if math.isclose(group[0].step_s, item.step_s, rel_tol=1e-9):
                group.append(item)
                break
        else:
            groups.append([item])
    rows = []
    for group in groups:
        simplest = min(group, key=lambda s: (len(set(s.layout.tp_degrees)), s.layout.num_gpus, s.layout.num_stages))
        rows.append((simplest, len(group) - 1))
    return rows


def _within_limits(candidate: Candidate, options: SearchOptions) -> bool:
    p = candidate.prediction
    if options.max_tpot_s is not None and p.tpot_s is not None and p.tpot_s > options.max_tpot_s:
        return False
    return not (options.max_ttft_s is not None and p.ttft_s is not None and p.ttft_s > options.max_ttft_s)


def search_plans(basis: Basis, options: SearchOptions | None = None, jobs: int = 1,
                 progress: Progress | None = None) -> SearchResult:
    """Search the basis's experiment; see the module docstring."""
    started = time.perf_counter()
    options = options or SearchOptions()
    experiment = basis.experiment
    check_options(experiment, options)
    say = progress or (lambda message: None)
    context = _Context(basis, options)
    seeds = _family_seeds(context)
    states = [0]

    def count_state() -> None:
        states[0] += 1
        if states[0] % 5000 == 0:
            say(f"twin: {states[0]:,} DP states expanded")

    say(f"twin: {len(seeds)} uniform TP x PP plans scored; searching the space")
    limit_s = options.max_tpot_s if options.max_tpot_s is not None else math.inf
    max_ttft_s = options.max_ttft_s if options.max_ttft_s is not None else math.inf
    best = k_best_layouts(context.tables, context.geometry, options.top_k, seeds, limit_s, max_ttft_s, count_state)
    if not best:
        raise LayerwiseError("search", _nothing_fits(context))
    finalists = [context.candidate("search", scored, ties=ties) for scored, ties in _count_ties(best)]
    if options.family == "all":
        for family in ("tp-pp", "layer-wise"):
            finalists += _family_best(context, family, seeds)
    finalists += _experiment_candidates(context)
    finalists = _unique(finalists)
    if options.events:
        say(f"events: simulating {len(finalists)} finalists")
        predictions = map_parallel(_simulate, [(SimInputs(basis, "search", c.plan), True) for c in finalists], jobs,
                                   lambda done, total, _: say(f"events: {done}/{total} finalists simulated"))
        finalists = [replace(c, events=p) for c, p in zip(finalists, predictions, strict=True)]
    else:  # the twin's figures, with the breakdown the table shows
        finalists = [replace(c, twin=_simulate((SimInputs(basis, "search", c.plan), False))) for c in finalists]
    ordered = sorted(finalists, key=lambda c: (-c.prediction.tokens_per_s, c.gpus, c.layout.num_stages))
    ranked = [c for c in ordered if _within_limits(c, options)]
    over = [c for c in ordered if not _within_limits(c, options)]
    if not ranked:
        raise LayerwiseError("search", "no finalist meets the limits under the event simulation "
                                       f"({len(over)} were over them); relax --max-tpot-ms / --max-ttft-ms")
    scored = {id(s): s for s in [*seeds, *best]}
    return SearchResult(
        experiment=experiment.name, model=experiment.model.name, cluster=experiment.cluster.name,
        phase=experiment.workload.phase, tokens_per_iteration=experiment.workload.tokens_per_iteration,
        regime=context.regime, options=options,
        space_size=count_layouts(experiment.model, experiment.cluster, experiment.workload, context.max_gpus),
        states_visited=states[0], ranked=tuple(ranked), over_limits=tuple(over), scored=tuple(scored.values()),
        band=context.band, resolution=resolution_statement(ranked),
        parameters=basis.profile_label, wall_s=time.perf_counter() - started)


def optimal_partitioner(basis: Basis, jobs: int = 1, progress: Progress | None = None) -> Optimizer:
    """The ``optimal`` partitioner on this basis: the event simulation's fastest plan of the search,
    with the options of the experiment file's ``plans.NAME`` (checked first, named as the file names them)."""
    def optimal(experiment: Experiment, plan_name: str, spec: dict[str, Any]) -> Plan:
        options = spec_options(experiment, plan_name, spec)
        if progress is not None:
            progress(f"partitioner {OPTIMAL}: searching the plans of {experiment.name} with the simulator")
        return search_plans(basis, options, jobs, progress).best.plan

    return optimal


def _family_best(context: _Context, family: str, seeds: list[Scored]) -> list[Candidate]:
    """The best plan of one family under the twin (the family's own search)."""
    options = replace(context.options, family=family, top_k=1)
    family_context = _Context(context.basis, options)
    if family == "tp-pp":
        best = min(seeds, key=lambda s: s.sort_key, default=None)
        return [family_context.candidate("tp-pp family", best)] if best is not None else []
    family_seeds = [s for s in seeds if set(s.layout.tp_degrees) == {1}]
    limit_s = options.max_tpot_s if options.max_tpot_s is not None else math.inf
    max_ttft_s = options.max_ttft_s if options.max_ttft_s is not None else math.inf
    found = k_best_layouts(family_context.tables, family_context.geometry, 1, family_seeds, limit_s, max_ttft_s)
    return [family_context.candidate(f"{family} family", found[0])] if found else []


def _unique(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per layout: the first origin wins, later ones are noted in it."""
    seen: dict[Layout, Candidate] = {}
    for candidate in candidates:
        if candidate.layout in seen:
            first = seen[candidate.layout]
            seen[candidate.layout] = replace(first, origin=f"{first.origin}; {candidate.origin}")
        else:
            seen[candidate.layout] = candidate
    return list(seen.values())


def _nothing_fits(context: _Context) -> str:
    e, o = context.experiment, context.options
    limits = []
    if o.max_tpot_s is not None:
        limits.append(f"TPOT <= {o.max_tpot_s * 1e3:g} ms")
    if o.max_ttft_s is not None:
        limits.append(f"TTFT <= {o.max_ttft_s * 1e3:g} ms")
    where = f"{e.model.name} on the first {context.max_gpus} GPUs of {e.cluster.name}"
    if limits:
        return f"no plan of {where} meets {' and '.join(limits)}"
    return f"no plan of {where} fits in HBM ({e.cluster.gpu.hbm_capacity_bytes / 1e9:.1f} GB per GPU)"
