"""Local processes and a local Ray instance of two CPUs give the same capacity search, probe for probe."""

from __future__ import annotations

import os

import pytest
from capacity_cases import rank_options, tiny_setup

from sim.capacity.result import CapacityResult
from sim.capacity.runners import LocalRunner, RayRunner
from sim.capacity.search import capacity_search

pytest.importorskip("ray")


def _verdicts(result: CapacityResult) -> list[tuple[object, ...]]:
    return [(f.deployment.key, f.status, f.capacity_index, f.rank, f.tied,
             tuple((p.index, p.met, p.reason, p.stopped_early, p.latencies_s, p.stood_in) for p in f.probes))
            for f in (*result.ranked, *result.others)]


@pytest.mark.slow
def test_ray_and_local_processes_find_the_same_capacities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    setup, basis = tiny_setup()
    options = rank_options(setup)
    local = capacity_search(setup, basis, options, lambda context: LocalRunner(context, 2))
    on_ray = capacity_search(setup, basis, options, lambda context: RayRunner(context, "auto", cpus=2))
    assert on_ray.runner.startswith("Ray at auto (2 CPUs)")
    assert _verdicts(on_ray) == _verdicts(local)
    assert on_ray.best is not None and on_ray.best.capacity_per_s == local.best.capacity_per_s  # type: ignore[union-attr]
    assert os.environ.get("RAY_ADDRESS") is None
