"""``search_plans``: the fastest plan of an experiment, in two stages sharing one cost model.

1. The closed-form twin scores the whole space (:mod:`sim.search.dp`: exact K best by dynamic
   programming, seeded with the uniform TP x PP family);
2. the event simulation runs the K best, the best of each family and the experiment's own plans;
   the answer is the event simulation's fastest plan that meets the limits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

from sim.api import analytic_estimate, simulate_plan
from sim.costs.model import CostModel, build_cost_model
from sim.costs.stage import PriceMemo
from sim.parallel import map_parallel
from sim.search.dp import Geometry, Scored, k_best_layouts, score_layout
from sim.search.families import FAMILIES, family_tp_choices, tp_pp_layouts
from sim.search.resolution import resolution_statement
from sim.search.result import Candidate, Prediction, SearchOptions, SearchResult
from sim.search.tables import StageTable
from topology.accuracy import plan_components, regime_of, unvalidated_components
from topology.errors import LayerwiseError
from topology.experiment import Experiment, build_plan
from topology.partition.space import Layout, count_layouts, layout_of_plan, microbatch_choices, plan_of_layout
from topology.plan import Plan
from topology.profile import HardwareProfile, band_for_cluster, check_profile_for_cluster, load_profile
from topology.results import RunResult

OPTIMAL = "optimal"  # the partitioner name of every plan the search returns
Progress = Callable[[str], None]


def check_options(experiment: Experiment, options: SearchOptions) -> None:
    """One line naming the bad option, before any work."""
    workload, cluster = experiment.workload, experiment.cluster
    if options.family not in FAMILIES:
        raise LayerwiseError("--family", f"must be one of {FAMILIES}, got {options.family!r}")
    if isinstance(options.top_k, bool) or options.top_k < 1:
        raise LayerwiseError("--top", f"must be a positive integer, got {options.top_k!r}")
    if options.gpus is not None and not 1 <= options.gpus <= cluster.num_devices:
        raise LayerwiseError("--gpus", f"{options.gpus} is not between 1 and cluster {cluster.name!r}'s "
                                       f"{cluster.num_devices} GPUs")
    if options.max_tpot_s is not None:
        if workload.phase != "decode":
            raise LayerwiseError("--max-tpot-ms", "applies to decode (this workload is prefill: use --max-ttft-ms)")
        if not options.max_tpot_s > 0:
            raise LayerwiseError("--max-tpot-ms", f"must be > 0, got {options.max_tpot_s * 1e3:g}")
    if options.max_ttft_s is not None:
        if workload.phase != "prefill":
            raise LayerwiseError("--max-ttft-ms", "applies to prefill (this workload is decode: use --max-tpot-ms)")
        if not options.max_ttft_s > 0:
            raise LayerwiseError("--max-ttft-ms", f"must be > 0, got {options.max_ttft_s * 1e3:g}")
    if options.microbatches is not None and (options.microbatches < 1 or workload.batch_size % options.microbatches):
        raise LayerwiseError("--microbatches", f"{options.microbatches} does not divide batch_size="
                                               f"{workload.batch_size}")


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


def _simulate(job: tuple[Experiment, Plan, HardwareProfile | None, bool]) -> Prediction:
    """One finalist by the event simulation, or (``events`` False) by the twin with its full breakdown."""
    experiment, plan, profile, events = job  # the profile was checked against the cluster (or forced) up front
    if not events:
        return _full_prediction(analytic_estimate(experiment, "search", plan=plan, profile=profile,
                                                  force_profile=True), "twin")
    return _full_prediction(simulate_plan(experiment, "search", plan=plan, profile=profile, force_profile=True),
                            "events")


class _Context:
    """The experiment's fixed inputs, shared by every step of one search."""

    def __init__(self, experiment: Experiment, profile: HardwareProfile | None, options: SearchOptions) -> None:
        self.experiment, self.profile, self.options = experiment, profile, options
        workload, cluster, model = experiment.workload, experiment.cluster, experiment.model
        self.cost: CostModel = build_cost_model(cluster, profile, workload.cuda_graphs)
        self.max_gpus = options.gpus if options.gpus is not None else cluster.num_devices
        self.geometry = Geometry(model.num_layers, cluster.gpus_per_node, self.max_gpus,
                                 family_tp_choices(options.family, model, cluster), workload.phase)
        counts = (options.microbatches,) if options.microbatches else microbatch_choices(workload)
        priced = PriceMemo()  # operator prices do not depend on the microbatch count's table
        self.tables = {m: StageTable(model, cluster, workload, self.cost, m, priced) for m in counts}
        self.regime = regime_of(workload.phase, workload.cuda_graphs)
        self.band = band_for_cluster(profile, cluster, self.regime)

    def candidate(self, origin: str, scored: Scored, plan: Plan | None = None, ties: int = 0) -> Candidate:
        e = self.experiment
        if plan is None:
            note = f"plan search ({self.options.family}): twin step {scored.step_s * 1e3:.6g} ms"
            plan = plan_of_layout(scored.layout, e.model, e.cluster, e.workload, OPTIMAL, notes=(note,))
        components = plan_components(plan, e.cluster, loops_back=e.workload.phase == "decode")
        return Candidate(origin, scored.layout, plan, scored,
                         _twin_prediction(scored, e.workload.tokens_per_iteration), None, ties,
                         components, unvalidated_components(components, self.band))

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


def search_plans(experiment: Experiment, profile: HardwareProfile | None = None,
                 options: SearchOptions | None = None, jobs: int = 1,
                 progress: Progress | None = None, force_profile: bool = False) -> SearchResult:
    """Search the experiment's space; see the module docstring. Without ``profile``, the one the
    experiment names (if any) prices every plan, the twin's and the events' alike. A profile of
    another GPU than the cluster's is refused unless ``force_profile``."""
    started = time.perf_counter()
    options = options or SearchOptions()
    check_options(experiment, options)
    if profile is None and experiment.profile_path:
        profile = load_profile(experiment.profile_path)
    if profile is not None:
        check_profile_for_cluster(profile, experiment.cluster, force_profile)
    say = progress or (lambda message: None)
    context = _Context(experiment, profile, options)
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
        predictions = map_parallel(_simulate, [(experiment, c.plan, profile, True) for c in finalists], jobs,
                                   lambda done, total: say(f"events: {done}/{total} finalists simulated"))
        finalists = [replace(c, events=p) for c, p in zip(finalists, predictions, strict=True)]
    else:  # the twin's figures, with the breakdown the table shows
        finalists = [replace(c, twin=_simulate((experiment, c.plan, profile, False))) for c in finalists]
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
        band=context.band, resolution=resolution_statement(ranked, context.band),
        parameters=_parameters(profile), wall_s=time.perf_counter() - started)


def _parameters(profile: HardwareProfile | None) -> str:
    if profile is None:
        return "datasheet parameters"
    return f"{profile.source} profile of {profile.gpu_name}"


def _family_best(context: _Context, family: str, seeds: list[Scored]) -> list[Candidate]:
    """The best plan of one family under the twin (the family's own search)."""
    options = replace(context.options, family=family, top_k=1)
    family_context = _Context(context.experiment, context.profile, options)
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
