"""The fast path (``serving.fast``) against the reference driver (``serving.driver.run_serving``):
the same run, compared field by field, on workloads that exercise every branch of the fast
scheduler (chunked prefill, preemption when the KV pool runs out, each policy, several replicas
behind each router, pipelines of depth 2 and 3, a closed loop); and a summarised run's metrics
against ``serving_metrics`` of the same run's records."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from serving.driver import ServingRun, run_serving
from serving.fast.run import run_serving_fast, summarize_serving
from serving.fast.summary import summary_metrics, weighted_percentiles
from serving.latency import LatencySummary, serving_metrics
from serving.scheduler_config import SchedulerConfig
from serving.shape import IterationShape, shape_of
from serving.slo import slo_spec_from_dict
from serving.sources import request_source
from serving.workload import serving_workload_from_dict


def shape_time_s(shape: IterationShape) -> float:
    """An iteration time that depends on every field of the shape (and is not a round number)."""
    chunks = sum(new * (1 + context / 4096) for new, context in shape.chunks)
    return (1.3e-3 + 7e-6 * shape.padded_tokens + 3e-9 * shape.decode_context_tokens + 2e-6 * chunks
            + (0.0 if shape.cuda_graph else 2.1e-4))


def workload(**overrides: Any) -> Any:
    raw: dict[str, Any] = {"phase": "serve", "seed": 3, "num_requests": 160,
                           "arrivals": {"kind": "poisson", "rate_per_s": 60.0},
                           "prompt_tokens": {"kind": "lognormal", "median_tokens": 120, "sigma": 0.8},
                           "output_tokens": {"kind": "lognormal", "median_tokens": 40, "sigma": 0.7}}
    raw.update(overrides)
    return serving_workload_from_dict(raw)


def scheduler(**overrides: Any) -> SchedulerConfig:
    values: dict[str, Any] = {"policy": "vllm", "max_num_batched_tokens": 256, "max_num_seqs": 24,
                              "block_size_tokens": 16, "num_blocks": 400, "max_model_len_tokens": 1024,
                              "cuda_graph_sizes": (1, 2, 4, 8, 16, 24)}
    values.update(overrides)
    return SchedulerConfig(**values)


CASES = {
    "chunked": (workload(), scheduler(), {}),
    "preemption": (workload(), scheduler(num_blocks=90), {}),
    "preemption-depth3": (workload(), scheduler(num_blocks=90), {"pipeline_depth": 3}),
    "prefill-first": (workload(), scheduler(policy="prefill-first", max_num_batched_tokens=1024), {}),
    "static": (workload(), scheduler(policy="static", max_num_batched_tokens=1024, num_blocks=200), {}),
    "reserve-full": (workload(), scheduler(reserve_full_prompt=True, num_blocks=120), {"pipeline_depth": 2}),
    "replicas-rr": (workload(num_requests=300, arrivals={"kind": "poisson", "rate_per_s": 150.0}),
                    scheduler(num_blocks=120), {"replicas": 3}),
    "replicas-least-kv": (workload(num_requests=300, arrivals={"kind": "gamma", "rate_per_s": 150.0, "cv": 2.0}),
                          scheduler(num_blocks=120), {"replicas": 3, "router": "least_kv", "pipeline_depth": 2}),
    "replicas-least-outstanding": (workload(num_requests=200), scheduler(),
                                   {"replicas": 2, "router": "least_outstanding"}),
    "rejections": (workload(prompt_tokens={"kind": "lognormal", "median_tokens": 500, "sigma": 1.0}),
                   scheduler(max_model_len_tokens=900, num_blocks=200), {}),
    "closed-loop": (workload(arrivals={"kind": "closed_loop", "users": 12, "think_time_s": 0.01}),
                    scheduler(num_blocks=100), {"pipeline_depth": 2}),
}


def reference(case: str) -> ServingRun:
    spec, config, options = CASES[case]
    return run_serving(request_source(spec), config, lambda plan: shape_time_s(shape_of(plan)), **options)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fast_path_is_the_reference_run(case: str) -> None:
    spec, config, options = CASES[case]
    expected = reference(case)
    fast = run_serving_fast(request_source(spec), config, shape_time_s, detail="trace", **options)
    assert fast.records == expected.records
    assert fast.iterations == expected.iterations
    assert fast.samples == expected.samples
    assert (fast.replicas, fast.pipeline_depth) == (expected.replicas, expected.pipeline_depth)


def test_the_cases_reach_the_branches_they_are_named_for() -> None:
    assert sum(record.preemptions for record in reference("preemption").records) > 0
    assert sum(record.preemptions for record in reference("preemption-depth3").records) > 0
    assert reference("rejections").rejected
    assert any(iteration.plan.num_tokens == 256 for iteration in reference("chunked").iterations)  # the budget binds
    assert {record.replica for record in reference("replicas-least-kv").records} == {0, 1, 2}


@pytest.mark.parametrize("case", ["chunked", "preemption", "replicas-least-kv"])
def test_records_detail_keeps_the_iterations_as_columns(case: str) -> None:
    spec, config, options = CASES[case]
    expected = reference(case)
    fast = run_serving_fast(request_source(spec), config, shape_time_s, detail="records", **options)
    assert fast.records == expected.records and fast.samples == expected.samples
    log = fast.iteration_log
    assert log is not None and len(log) == len(expected.iterations)
    assert [float(s) for s in log.start_s] == [it.start_s for it in expected.iterations]


def close_summary(got: LatencySummary | None, want: LatencySummary | None) -> None:
    assert (got is None) == (want is None)
    if got is not None and want is not None:
        assert (got.count, got.p50_s, got.p90_s, got.p95_s, got.p99_s) == (
            want.count, want.p50_s, want.p90_s, want.p95_s, want.p99_s)
        assert math.isclose(got.mean_s, want.mean_s, rel_tol=1e-12)


@pytest.mark.parametrize("case", ["preemption", "replicas-least-kv", "rejections"])
def test_a_summarised_run_has_the_metrics_of_the_records(case: str) -> None:
    spec, config, options = CASES[case]
    slos = slo_spec_from_dict({"ttft": {"p99": 0.4}, "tpot": {"p90": 0.03}, "itl": {"p90": 0.02},
                               "e2e": {"p50": 1.5}})
    run = reference(case)
    want = serving_metrics(run.records, num_gpus=2, slos=slos, samples=run.samples)
    summary = summarize_serving(request_source(spec), config, shape_time_s, itl_percents=(90.0,), **options)
    got = summary_metrics(summary, num_gpus=2, slos=slos)
    for name in ("ttft", "tpot", "e2e", "queueing"):
        assert getattr(got, name) == getattr(want, name)
    close_summary(got.itl, want.itl)
    assert got.slo_checks == want.slo_checks
    assert (got.throughput, got.goodput_requests_per_s, got.slo_attainment, got.stability) == (
        want.throughput, want.goodput_requests_per_s, want.slo_attainment, want.stability)
    assert (got.finished, got.rejected, got.preemptions, got.preempted_requests) == (
        want.finished, want.rejected, want.preemptions, want.preempted_requests)
    for name in ("kv_usage", "running", "waiting"):
        got_value, want_value = getattr(got, name), getattr(want, name)
        assert got_value.max == want_value.max
        assert math.isclose(got_value.mean, want_value.mean, rel_tol=1e-9)
    assert summary.iterations == len(run.iterations)


def test_weighted_percentiles_are_numpy_percentiles_of_the_repeated_sample() -> None:
    rng = np.random.default_rng(5)
    values = np.sort(rng.choice(rng.random(50), size=20, replace=False))
    counts = rng.integers(1, 7, size=20)
    percents = (0.0, 1.0, 33.3, 50.0, 90.0, 99.0, 100.0)
    assert weighted_percentiles(values, counts, percents) == [
        float(v) for v in np.percentile(np.repeat(values, counts), percents)]
