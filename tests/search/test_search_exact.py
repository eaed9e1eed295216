"""The search against brute force: every plan of small spaces scored by the twin and simulated by events."""

from __future__ import annotations

import math

import pytest
from search_cases import CASES, mini_experiment

from sim.costs.build import build_cost_model
from sim.inputs import basis_of, given_profile
from sim.resolve import resolve_given
from sim.search.dp import Geometry, Scored, k_best_layouts, score_layout
from sim.search.families import tp_pp_layouts
from sim.search.options import SearchOptions
from sim.search.plan_search import search_plans
from sim.search.tables import StageTable
from sim.simulate import estimate, simulate
from topology.errors import LayerwiseError
from topology.experiment import Experiment
from topology.partition.space import enumerate_layouts, microbatch_choices, plan_of_layout, tp_choices


def _twin_all(experiment: Experiment, max_gpus: int | None = None):  # type: ignore[no-untyped-def]
    """Every layout that fits HBM, scored by the twin's tables; and the tables."""
    e = experiment
    cost = build_cost_model(e.cluster, None, e.workload.cuda_graphs)
    tables = {m: StageTable(e.model, e.cluster, e.workload, cost, m) for m in microbatch_choices(e.workload)}
    scored = []
    for layout in enumerate_layouts(e.model, e.cluster, e.workload, max_gpus):
        s = score_layout(layout, tables[layout.microbatches], e.cluster.gpus_per_node, e.workload.phase)
        if s is not None:
            scored.append(s)
    return scored, tables


def _k_best_steps(scored: list[Scored], k: int) -> list[float]:
    """The steps of the k best distinct points (microbatches, S, X): layouts that are the same stages in
    another order count once, layouts with the same step but different S or X count apart."""
    points: list[Scored] = []
    for s in sorted(scored, key=lambda s: s.step_s):
        if not any(p.layout.microbatches == s.layout.microbatches and math.isclose(p.cycle_s, s.cycle_s, rel_tol=1e-9)
                   and math.isclose(p.bottleneck_s, s.bottleneck_s, rel_tol=1e-9) for p in points):
            points.append(s)
    return [p.step_s for p in points[:k]]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("max_gpus", [None, 3])
def test_the_dp_finds_the_k_best_steps_of_brute_force(case: str, max_gpus: int | None) -> None:
    experiment = mini_experiment(case)
    scored, tables = _twin_all(experiment, max_gpus)
    e = experiment
    geometry = Geometry(e.model.num_layers, e.cluster.gpus_per_node, max_gpus or e.cluster.num_devices,
                        tp_choices(e.model, e.cluster), e.workload.phase)
    seeds = [s for s in (score_layout(layout, tables[layout.microbatches], e.cluster.gpus_per_node, e.workload.phase)
                         for layout in tp_pp_layouts(e.model, e.cluster, e.workload, geometry.max_gpus))
             if s is not None]
    for k in (1, 5):
        found = k_best_layouts(tables, geometry, k, seeds)
        assert [s.step_s for s in found] == pytest.approx(_k_best_steps(scored, k), rel=1e-12)
        assert all(s.layout.num_gpus <= geometry.max_gpus for s in found)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_tables_add_up_to_the_twin_of_the_whole_plan(case: str) -> None:
    experiment = mini_experiment(case)
    scored, _ = _twin_all(experiment)
    for s in scored[::7]:
        plan = plan_of_layout(s.layout, experiment.model, experiment.cluster, experiment.workload, "check")
        twin = estimate(resolve_given(experiment, plan, None))
        assert twin.metrics.step_time_s == pytest.approx(s.step_s, rel=1e-12), s.layout.describe()


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_search_finds_the_best_plan_of_brute_force_under_events(case: str) -> None:
    """Every plan of the space simulated event by event: the search's answer is the fastest."""
    experiment = mini_experiment(case)
    best = 0.0
    for layout in enumerate_layouts(experiment.model, experiment.cluster, experiment.workload):
        try:
            plan = plan_of_layout(layout, experiment.model, experiment.cluster, experiment.workload, "brute")
        except LayerwiseError:
            continue  # does not fit HBM
        best = max(best, simulate(resolve_given(experiment, plan, None)).metrics.tokens_per_s)
    result = search_plans(basis_of(experiment, given_profile(None)), SearchOptions(top_k=5))
    assert result.best.prediction.estimator == "events"
    assert result.best.prediction.tokens_per_s == pytest.approx(best, rel=1e-9)
    assert [c.prediction.tokens_per_s for c in result.ranked] == sorted(
        (c.prediction.tokens_per_s for c in result.ranked), reverse=True)
