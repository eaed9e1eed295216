"""Stopping early never changes a verdict that a TTFT, E2E or (one stage) TPOT bound decides; the
percentile rule behind it against numpy; and a run that reuse says stands for another setting's run is
that run, record for record."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from capacity_cases import tiny_setup

from serving.at_rate import workload_at_rate
from serving.driver import run_serving
from serving.latency import serving_metrics
from serving.slo import Slo, SloSpec
from serving.sources import OpenLoopSource, open_loop_requests
from sim.capacity.probe import probe_aggregated
from sim.capacity.reuse import same_run
from sim.capacity.settings import deployment_scheduler
from sim.capacity.space import Knobs
from sim.capacity.watch import violators_needed
from sim.serving.run import iteration_pricer
from topology.experiment import build_plan


@pytest.mark.parametrize("count", [1, 2, 7, 100, 101, 1000])
@pytest.mark.parametrize("quantile", [50.0, 90.0, 99.0])
def test_enough_values_above_a_bound_put_the_percentile_above_it(count: int, quantile: float) -> None:
    """Exactly ``needed`` values just above the bound 1 and the others anywhere up to it, even at it:
    the percentile is above the bound (numpy's linear interpolation)."""
    needed = violators_needed(count, quantile)
    assert 1 <= needed <= count
    rng = np.random.default_rng(count)
    for low in (0.0, 1.0):
        values = rng.uniform(low, 1.0, count)
        values[:needed] = 1.0 + 1e-9
        assert np.percentile(values, quantile) > 1.0


SLO_SETS = [SloSpec((Slo("ttft", "p99", 0.02),)), SloSpec((Slo("e2e", "p90", 0.08),)),
            SloSpec((Slo("ttft", "p90", 0.05), Slo("tpot", "p99", 0.003)))]


@pytest.mark.slow
@pytest.mark.parametrize("slos", SLO_SETS)
def test_a_watched_run_has_the_verdict_of_the_full_run(slos: SloSpec) -> None:
    setup, basis = tiny_setup()
    plan = build_plan(setup.experiment, "tp1")
    scheduler = deployment_scheduler(setup, plan, Knobs(16, 512, True))
    price = iteration_pricer(basis, plan)
    stopped = 0
    for rate in (200.0, 300.0, 400.0, 500.0, 700.0, 1000.0):
        probe = probe_aggregated(setup.workload, rate, 0, scheduler, price, 1, 1, "round_robin", 1, slos, 0.1)
        requests = open_loop_requests(workload_at_rate(setup.workload, rate))
        run = run_serving(OpenLoopSource(requests), scheduler, price)
        full = serving_metrics(run.records, num_gpus=1, slos=slos)
        assert probe.met == full.meets_slos, (rate, probe.reason)
        stopped += probe.stopped_early
    assert stopped >= 1  # the high rates stop early


@pytest.mark.slow
def test_a_run_that_stands_for_another_is_that_run() -> None:
    setup, basis = tiny_setup()
    plan = build_plan(setup.experiment, "tp1")
    price = iteration_pricer(basis, plan)
    slos = SloSpec((Slo("ttft", "p99", 10.0),))  # loose: every run is full
    checked = {True: 0, False: 0}
    for rate in (150.0, 400.0):
        requests = open_loop_requests(workload_at_rate(setup.workload, rate))
        runs = {}
        for seqs in (4, 8, 16, 64):
            scheduler = deployment_scheduler(setup, plan, Knobs(seqs, 512, True))
            runs[seqs] = (scheduler, run_serving(OpenLoopSource(requests), scheduler, price))
            probe = probe_aggregated(setup.workload, rate, 0, scheduler, price, 1, 1, "round_robin", 1, slos, 0.1)
            assert probe.limits is not None and probe.limits.peak_running == max(
                it.num_running for it in runs[seqs][1].iterations)
            runs[seqs] = (*runs[seqs], probe.limits)  # type: ignore[assignment]
        for a in runs.values():
            for b in runs.values():
                if a is b:
                    continue
                verdict = same_run(a[0], a[2], b[0])  # type: ignore[misc]
                identical = a[1].records == b[1].records
                assert not verdict or identical
                checked[verdict] += 1
    assert checked[True] and checked[False]  # both kinds occur here


def test_reuse_refuses_what_could_differ() -> None:
    setup, _ = tiny_setup()
    plan = build_plan(setup.experiment, "tp1")
    small = deployment_scheduler(setup, plan, Knobs(8, 512, True))
    large = deployment_scheduler(setup, plan, Knobs(16, 512, True))
    from sim.capacity.probe import RunLimits

    quiet = RunLimits(peak_running=5, max_tokens=300, peak_kv_blocks=40, preemptions=0)
    assert same_run(large, quiet, small) and same_run(small, quiet, large)
    full = dataclasses.replace(quiet, peak_running=8)
    assert same_run(large, full, small)  # 8 ran under 16: a check at 8 admitted nobody
    assert not same_run(small, full, large)  # 8 was the cap: 16 might have admitted more
    assert not same_run(large, dataclasses.replace(quiet, max_tokens=512), deployment_scheduler(
        setup, plan, Knobs(16, 256, True)))  # 512 tokens in one iteration do not fit a budget of 256
    no_chunks = deployment_scheduler(setup, plan, Knobs(16, 512, False))
    assert not same_run(large, quiet, no_chunks)  # another policy
