"""Arrival processes, length distributions and request sources: the statistics asked for (from
enough samples, fixed seeds), the closed loop's bound, and one seed giving one set of requests."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from serving_cases import config, linear_time_s

from serving.arrivals import GammaArrivals, PoissonArrivals, arrival_times_s
from serving.driver import run_serving
from serving.lengths import lengths_from_dict
from serving.sources import ClosedLoopSource, open_loop_requests, request_source
from serving.workload import serving_workload_from_dict
from topology.errors import LayerwiseError


def _workload(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"phase": "serve", "seed": 7, "num_requests": 200,
                           "arrivals": {"kind": "poisson", "rate_per_s": 5.0},
                           "prompt_tokens": {"kind": "uniform", "low_tokens": 16, "high_tokens": 64},
                           "output_tokens": {"kind": "fixed", "tokens": 8}}
    raw.update(overrides)
    return raw


def _cv(values: np.ndarray) -> float:
    return float(values.std() / values.mean())


def test_poisson_gaps_have_mean_one_over_rate_and_cv_one() -> None:
    gaps = np.diff(arrival_times_s(PoissonArrivals(4.0), np.random.default_rng(1), count=40_001))
    assert gaps.mean() == pytest.approx(0.25, rel=0.02)
    assert _cv(gaps) == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize("cv", [0.5, 2.0, 4.0])
def test_gamma_gaps_have_the_cv_asked(cv: float) -> None:
    gaps = np.diff(arrival_times_s(GammaArrivals(3.0, cv), np.random.default_rng(2), count=100_001))
    assert gaps.mean() == pytest.approx(1 / 3.0, rel=0.03)
    assert _cv(gaps) == pytest.approx(cv, rel=0.05)


def test_a_duration_keeps_every_arrival_inside_the_window() -> None:
    times = arrival_times_s(PoissonArrivals(50.0), np.random.default_rng(3), duration_s=100.0)
    assert times[-1] <= 100.0 and len(times) == pytest.approx(5000, rel=0.05)
    assert np.all(np.diff(times) >= 0)


def test_one_seed_gives_one_set_of_requests() -> None:
    first = open_loop_requests(serving_workload_from_dict(_workload()))
    again = open_loop_requests(serving_workload_from_dict(_workload()))
    other = open_loop_requests(serving_workload_from_dict(_workload(seed=8)))
    assert first == again and first != other
    assert [spec.request_id for spec in first] == list(range(200))
    assert all(a.arrival_s <= b.arrival_s for a, b in pairwise(first))


def test_lengths_do_not_depend_on_the_arrival_process() -> None:
    poisson = open_loop_requests(serving_workload_from_dict(_workload()))
    bursty = open_loop_requests(serving_workload_from_dict(_workload(arrivals={"kind": "gamma", "rate_per_s": 1.0,
                                                                               "cv": 3.0})))
    assert [s.prompt_tokens for s in poisson] == [s.prompt_tokens for s in bursty]
    assert [s.arrival_s for s in poisson] != [s.arrival_s for s in bursty]


def test_closed_loop_keeps_at_most_n_requests_outstanding() -> None:
    raw = _workload(num_requests=40, arrivals={"kind": "closed_loop", "users": 3, "think_time_s": 0.002},
                    output_tokens={"kind": "uniform", "low_tokens": 1, "high_tokens": 6})
    run = run_serving(request_source(serving_workload_from_dict(raw)), config(), linear_time_s)
    assert len(run.records) == 40 and all(record.finished for record in run.records)
    assert max(sample.num_in_system for sample in run.samples) == 3
    finishes = sorted(record.finish_s for record in run.records if record.finish_s is not None)
    for record in run.records[3:]:  # every later request follows a finish by the think time
        assert min(abs(record.arrival_s - 0.002 - finish) for finish in finishes) < 1e-12
    again = run_serving(request_source(serving_workload_from_dict(raw)), config(), linear_time_s)
    assert again.records == run.records


def test_closed_loop_with_a_duration_stops_issuing_after_it() -> None:
    raw = _workload(duration_s=0.05, arrivals={"kind": "closed_loop", "users": 2, "think_time_s": 0.0})
    del raw["num_requests"]
    run = run_serving(request_source(serving_workload_from_dict(raw)), config(), linear_time_s)
    assert run.records and all(record.arrival_s <= 0.05 for record in run.records)
    assert max(record.finish_s or 0.0 for record in run.records) > 0.05 - 0.02


def test_closed_loop_source_refuses_an_unknown_request() -> None:
    source = request_source(serving_workload_from_dict(_workload(arrivals={"kind": "closed_loop", "users": 2})))
    assert isinstance(source, ClosedLoopSource)
    first = source.initial_requests()
    assert [spec.arrival_s for spec in first] == [0.0, 0.0] and source.user_of(1) == 1
    follow = source.after_done(1, 0.5)
    assert follow is not None and follow.arrival_s == 0.5 and source.user_of(follow.request_id) == 1
    with pytest.raises(LayerwiseError, match=r"^request_id: 1 is not outstanding"):
        source.after_done(1, 0.6)


@pytest.mark.parametrize("raw, check", [
    ({"kind": "fixed", "tokens": 12}, lambda x: np.all(x == 12)),
    ({"kind": "uniform", "low_tokens": 3, "high_tokens": 5}, lambda x: set(np.unique(x)) == {3, 4, 5}),
    ({"kind": "normal", "mean_tokens": 100, "std_tokens": 10},
     lambda x: abs(x.mean() - 100) < 0.5 and abs(x.std() - 10) < 0.3),
    ({"kind": "normal", "mean_tokens": 1, "std_tokens": 50}, lambda x: x.min() == 1),  # clipped at 1
    ({"kind": "lognormal", "median_tokens": 1000, "sigma": 0.5}, lambda x: abs(np.median(x) - 1000) < 15),
    ({"kind": "lognormal", "mu": float(np.log(200)), "sigma": 0.0}, lambda x: np.all(x == 200)),
    ({"kind": "histogram", "edges_tokens": [1, 10, 100], "weights": [3, 1]},
     lambda x: x.min() >= 1 and x.max() < 100 and abs(np.mean(x < 10) - 0.75) < 0.01),
])
def test_length_distributions(raw: dict[str, Any], check: Any) -> None:
    spec = lengths_from_dict("workload.prompt_tokens", raw)
    values = spec.sample(np.random.default_rng(4), 20_000)  # type: ignore[union-attr]
    assert values.dtype == np.int64 and values.min() >= 1
    assert check(values)
