"""The crossover between aggregated and disaggregated serving: the sentence on hand-made sweeps, and the
sweep of the small space checked probe by probe (each capacity meets its bound, the next rate does not,
unless the capacity is the deployment's bound, above which no search looks)."""

from __future__ import annotations

import dataclasses

from capacity_cases import SPACE, tiny_setup

from serving.slo import Slo, SloSpec
from sim.capacity.crossover import Crossover, SweepPoint, describe_crossover
from sim.capacity.options import CapacityOptions, Objective
from sim.capacity.probe import ProbeResult
from sim.capacity.result import capacity_result_to_dict
from sim.capacity.runners import LocalRunner
from sim.capacity.search import capacity_search
from sim.capacity.tasks import CapacityContext, DeploymentJob, install_context, probe_deployment

MS = 1e-3


def _probe(mixed: float | None = None, kv_wait_s: float | None = None, tpot_s: float = 0.0) -> ProbeResult:
    return ProbeResult(0, 1.0, True, "", False, (("tpot_p99", tpot_s),), None, 1, 0.0,
                       mixed_decode_fraction=mixed, kv_wait_mean_s=kv_wait_s)


def _point(bound_ms: float, per_gpu: float | None, probe: ProbeResult | None = None) -> SweepPoint:
    return SweepPoint(bound_ms * MS, None if per_gpu is None else round(per_gpu * 10), per_gpu, probe)


def test_the_winner_changes_once_and_the_line_says_where_and_why() -> None:
    # Disaggregated 2.0 against aggregated 1.0 at 25 ms, 3.0 against 2.0 at 50 ms; from 75 ms aggregated
    # wins (4.0 against 3.0): the crossover lies between 50 and 75 ms.
    aggregated = (_point(25, 1.0, _probe(mixed=0.4, tpot_s=24 * MS)),
                  _point(50, 2.0, _probe(mixed=0.5, tpot_s=49 * MS)),
                  _point(75, 4.0, _probe(mixed=0.6, tpot_s=70 * MS)))
    disaggregated = (_point(25, 2.0, _probe(kv_wait_s=1 * MS)), _point(50, 3.0, _probe(kv_wait_s=2 * MS)),
                     _point(75, 3.0, _probe(kv_wait_s=2 * MS)))
    crossover = Crossover("tpot", "p99", "AGG", "DIS", aggregated, disaggregated)
    assert [w for _, w in crossover.winners] == ["disaggregated", "disaggregated", "aggregated"]
    line = describe_crossover(crossover)
    assert "disaggregated wins at bounds up to 50 ms, aggregated from 75 ms: the crossover lies between them" in line
    assert "25 ms: 2 vs 1, 50 ms: 3 vs 2, 75 ms: 3 vs 4" in line
    assert "Why, at 50 ms: aggregated: 50% of its decode tokens share an iteration with prefill chunks" in line
    assert "TPOT p99 49 ms at its capacity" in line and "waits 2 ms on average for its KV transfer" in line
    assert "At 75 ms: aggregated: 60% of its decode tokens" in line


def test_one_winner_throughout_is_no_crossover_and_nothing_is_neither() -> None:
    none = (_point(10, None), _point(20, None))
    assert "neither kind wins at any bound" in describe_crossover(Crossover("tpot", "p99", "A", "D", none, none))
    aggregated = (_point(10, None), _point(20, 2.0, _probe(mixed=0.25, tpot_s=15 * MS)))
    disaggregated = (_point(10, None), _point(20, 1.0, _probe(kv_wait_s=3 * MS)))
    line = describe_crossover(Crossover("tpot", "p99", "A", "D", aggregated, disaggregated))
    assert "no crossover in this range: aggregated wins wherever one does (10 ms: nothing vs nothing" in line
    assert "Why, at 20 ms: aggregated: 25% of its decode tokens" in line


def test_the_small_space_sweep_is_exact_at_every_bound() -> None:
    setup, basis = tiny_setup()
    space = dataclasses.replace(SPACE, routers=("round_robin",), max_num_seqs=(16,), chunked=(True,),
                                disaggregated=True)
    options = CapacityOptions(slos=setup.slos, objective=Objective("rate-per-gpu"), gpu_budget=2, space=space,
                              resolution=0.08, top=3, wave=2)
    result = capacity_search(setup, basis, options, lambda context: LocalRunner(context, 1))
    crossover = result.crossover
    assert crossover is not None and (crossover.metric, crossover.percentile) == ("tpot", "p90")
    assert [p.bound_s for p in crossover.aggregated_points] == [4 * MS * f for f in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)]
    assert crossover.aggregated.startswith("aggregated ") and crossover.disaggregated.startswith("disaggregated ")
    assert result.crossover_line.startswith("Crossover (TPOT p90 bound swept from 2 ms to 12 ms")
    assert capacity_result_to_dict(result)["crossover"]["line"] == result.crossover_line
    findings = {f.deployment.key: f for f in (*result.ranked, *result.others)}
    context = CapacityContext("crossover-check", setup, basis, setup.slos, options.max_waiting_fraction)
    install_context(context)
    for key, points in ((crossover.aggregated, crossover.aggregated_points),
                        (crossover.disaggregated, crossover.disaggregated_points)):
        finding = findings[key]
        assert finding.scheduler is not None
        for point in points:
            if point.capacity_index is None:
                continue
            slos = SloSpec((Slo("ttft", "p99", 0.02), Slo("tpot", "p90", point.bound_s)))
            check = dataclasses.replace(context, slos=slos)
            job = _job(finding.deployment, finding.scheduler, options.resolution, finding.bound_per_s)
            assert point.capacity_index <= job.top  # the bound caps every search (a short run can pass above it)
            assert probe_deployment(check, job, point.capacity_index).met
            if point.capacity_index < job.top:
                assert not probe_deployment(check, job, point.capacity_index + 1).met


def _job(deployment, scheduler, resolution: float, bound_per_s: float) -> DeploymentJob:  # type: ignore[no-untyped-def]
    from sim.capacity.grid import RateGrid
    grid = RateGrid(float(deployment.gpus), resolution)
    return DeploymentJob(deployment, scheduler, grid, grid.index_at_or_below(bound_per_s), 0, bound_per_s)
