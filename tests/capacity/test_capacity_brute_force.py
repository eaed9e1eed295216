"""The search's answer against brute force: every deployment of the small space simulated at every rate
of the grid (from below the K-th best capacity to above its bound), with the same probe the search runs.

Checked: meeting the SLOs is monotone in the rate on this space (bisection's assumption); no deployment
meets them above its bound (the bound prunes soundly); the search's top K (ties included) are brute
force's top K with the same capacities (to the grid's resolution, exactly: the same indices); every
deployment the search did not resolve is below the K-th best; and the same search on two processes gives
the same result."""

from __future__ import annotations

import pytest
from capacity_cases import rank_options, tiny_setup

from serving.setup import ServingSetup
from sim.capacity.grid import RateGrid
from sim.capacity.probe import probe_aggregated
from sim.capacity.result import RESOLVED, CapacityResult, Finding
from sim.capacity.runners import LocalRunner
from sim.capacity.search import capacity_search
from sim.inputs import Basis
from sim.serving.iteration_cost import IterationPricer
from sim.serving.run import iteration_pricer


def _search(jobs: int) -> tuple[CapacityResult, ServingSetup, Basis]:
    setup, basis = tiny_setup()
    options = rank_options(setup)
    return capacity_search(setup, basis, options, lambda context: LocalRunner(context, jobs)), setup, basis


def _verdicts(result: CapacityResult) -> list[tuple[str, str, int | None, tuple[tuple[int, bool, str], ...]]]:
    return [(f.deployment.key, f.status, f.capacity_index, tuple((p.index, p.met, p.reason) for p in f.probes))
            for f in (*result.ranked, *result.others)]


@pytest.mark.slow
def test_the_search_equals_brute_force_on_a_small_space() -> None:
    result, setup, basis = _search(jobs=1)
    options = result.options
    findings: list[Finding] = [*result.ranked, *result.others]
    assert result.counts.pruned_by_bound > 0 and result.counts.resolved > 0  # the space exercises both
    kth = result.ranked[-1].capacity_index
    assert kth is not None
    lowest = kth - 3
    pricers: dict[str, IterationPricer] = {}
    brute: dict[str, int | None] = {}
    for finding in findings:
        deployment = finding.deployment
        assert not finding.status.startswith("infeasible")
        grid = RateGrid(float(deployment.gpus), options.resolution)
        top = grid.index_at_or_below(finding.bound_per_s)
        if deployment.plan.label not in pricers:
            pricers[deployment.plan.label] = iteration_pricer(basis, deployment.plan.plan)
        assert finding.scheduler is not None
        rates = range(min(lowest, top + 1), top + 2)
        met = [probe_aggregated(setup.workload, grid.rate_per_s(k), k, finding.scheduler,
                                pricers[deployment.plan.label], deployment.plan.stages, deployment.replicas,
                                deployment.router, deployment.gpus, setup.slos, options.max_waiting_fraction).met
               for k in rates]
        assert met == sorted(met, reverse=True), f"{deployment.key}: not monotone in the rate: {met}"
        assert not met[-1], f"{deployment.key} meets the SLOs above its bound"
        passed = [k for k, ok in zip(rates, met, strict=True) if ok]
        brute[deployment.key] = max(passed) if passed else None
    best_first = sorted(((index, key) for key, index in brute.items() if index is not None), reverse=True)
    assert len(best_first) >= options.top
    kth_brute = best_first[options.top - 1][0]
    assert kth_brute == kth
    top_brute = {key for index, key in best_first if index >= kth_brute}
    assert {f.deployment.key for f in result.ranked} == top_brute
    for finding in result.ranked:
        assert finding.capacity_index == brute[finding.deployment.key]
        assert finding.tied == (sum(1 for f in result.ranked if f.capacity_index == finding.capacity_index) > 1)
    for finding in result.others:
        found = brute[finding.deployment.key]
        assert found is None or found < kth, finding.deployment.key
        if finding.status == RESOLVED:
            assert finding.capacity_index is not None
            assert finding.capacity_index == found or (found is None and finding.capacity_index < lowest)


@pytest.mark.slow
def test_two_processes_give_the_same_result_as_one() -> None:
    one, _, _ = _search(jobs=1)
    two, _, _ = _search(jobs=2)
    assert _verdicts(one) == _verdicts(two)
