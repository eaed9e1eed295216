"""Latency metrics by their definitions on hand-made records, goodput against SLOs, throughput,
time-weighted occupancy, Little's law on a long run, the instability check, and KV block counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from serving_cases import config, linear_time_s, requests, serve

from serving.driver import run_serving
from serving.kv_blocks import KvBlockPool, blocks_for_tokens, kv_blocks_from_memory
from serving.latency import metric_values_s, serving_metrics, summarize_s, throughput
from serving.occupancy import StateSample, mean_in_system, time_weighted
from serving.requests import RequestRecord, RequestStatus
from serving.scheduler_config import SchedulerConfig
from serving.slo import slo_spec_from_dict
from serving.sources import request_source
from serving.stability import check_stability
from serving.workload import serving_workload_from_dict


def _record(request_id: int, arrival_s: float, scheduled_s: float, tokens_s: list[float], prompt: int = 10,
            preemptions: int = 0) -> RequestRecord:
    return RequestRecord(request_id=request_id, arrival_s=arrival_s, prompt_tokens=prompt,
                         output_tokens=len(tokens_s), status=RequestStatus.FINISHED, first_scheduled_s=scheduled_s,
                         token_times_s=tuple(tokens_s), finish_s=tokens_s[-1], preemptions=preemptions)


# r0: arrives 0, scheduled 0.5, tokens 1.0, 1.5, 2.5: TTFT 1.0, E2E 2.5, TPOT 1.5/2 = 0.75, ITL 0.5, 1.0
# r1: arrives 1.0, scheduled 1.0, one token at 2.0: TTFT 1.0, E2E 1.0, no TPOT, no ITL
# r2: arrives 2.0, scheduled 2.2, tokens 3.0, 3.2: TTFT 1.0, E2E 1.2, TPOT 0.2, ITL 0.2
# r3: rejected at arrival (2.5)
RECORDS = (
    _record(0, 0.0, 0.5, [1.0, 1.5, 2.5], preemptions=2),
    _record(1, 1.0, 1.0, [2.0]),
    _record(2, 2.0, 2.2, [3.0, 3.2]),
    RequestRecord(request_id=3, arrival_s=2.5, prompt_tokens=900, output_tokens=200, status=RequestStatus.REJECTED,
                  first_scheduled_s=None, token_times_s=(), finish_s=None, preemptions=0,
                  rejected_because="too long"),
)


def test_per_request_metrics_follow_their_definitions() -> None:
    r0, r1, r2, r3 = RECORDS
    assert (r0.ttft_s, r0.e2e_s, r0.tpot_s, r0.itl_s, r0.queueing_s) == (1.0, 2.5, 0.75, (0.5, 1.0), 0.5)
    assert (r1.ttft_s, r1.e2e_s, r1.tpot_s, r1.itl_s, r1.queueing_s) == (1.0, 1.0, None, (), 0.0)
    assert r2.tpot_s == pytest.approx(0.2) and r2.itl_s == pytest.approx((0.2,))
    assert (r3.ttft_s, r3.e2e_s, r3.tpot_s, r3.queueing_s) == (None, None, None, None)
    assert metric_values_s(RECORDS, "tpot") == pytest.approx([0.75, 0.2])  # the one-token request left out
    assert metric_values_s(RECORDS, "itl") == pytest.approx([0.5, 1.0, 0.2])  # pooled


def test_summaries_use_linear_percentiles() -> None:
    e2e = summarize_s(metric_values_s(RECORDS, "e2e"))
    assert e2e is not None and e2e.count == 3
    # sorted 1.0, 1.2, 2.5; p90 at rank 0.9 x 2 = 1.8: 1.2 + 0.8 x 1.3 = 2.24
    assert (e2e.mean_s, e2e.p50_s, e2e.p90_s) == pytest.approx((4.7 / 3, 1.2, 2.24))
    assert e2e.p99_s == pytest.approx(float(np.percentile([2.5, 1.0, 1.2], 99)))
    assert summarize_s([]) is None


def test_throughput_counts_finished_requests_over_first_arrival_to_last_finish() -> None:
    rate = throughput(RECORDS, num_gpus=2)
    # 0 to 3.2 s; 3 requests, 6 output tokens, 30 prompt tokens (the rejected one counts nowhere)
    assert rate.duration_s == pytest.approx(3.2)
    assert (rate.requests_per_s, rate.output_tokens_per_s) == pytest.approx((3 / 3.2, 6 / 3.2))
    assert (rate.total_tokens_per_s, rate.output_tokens_per_s_per_gpu) == pytest.approx((36 / 3.2, 3 / 3.2))
    assert throughput(RECORDS, num_gpus=1, duration_s=6.4).requests_per_s == pytest.approx(3 / 6.4)


def test_goodput_counts_requests_meeting_every_slo_by_their_own_values() -> None:
    slos = slo_spec_from_dict({"ttft": {"p99": 1.0}, "tpot": {"p90": 0.5}})
    metrics = serving_metrics(RECORDS, num_gpus=1, slos=slos)
    # r0's TPOT 0.75 > 0.5; r1 has no TPOT (met, as vLLM counts it); r2 meets both: 2 of 3.
    assert metrics.goodput_requests_per_s == pytest.approx(2 / 3.2)
    assert metrics.slo_attainment == pytest.approx(2 / 3)
    ttft_check, tpot_check = metrics.slo_checks
    assert (ttft_check.value_s, ttft_check.met) == (1.0, True)
    assert tpot_check.value_s == pytest.approx(0.2 + 0.9 * 0.55) and not tpot_check.met  # p90 of 0.2, 0.75
    assert not metrics.meets_slos
    assert (metrics.finished, metrics.rejected, metrics.preemptions, metrics.preempted_requests) == (3, 1, 2, 1)
    # ITL per request: r0's median gap 0.75 > 0.6; r1 (no gap) and r2 (0.2) meet it.
    itl = serving_metrics(RECORDS, num_gpus=1, slos=slo_spec_from_dict({"itl": {"p50": 0.6}}))
    assert itl.slo_attainment == pytest.approx(2 / 3) and itl.slo_checks[0].met  # pooled median 0.5
    assert serving_metrics(RECORDS, num_gpus=1).goodput_requests_per_s == pytest.approx(3 / 3.2)


def test_time_weighted_occupancy() -> None:
    samples = [StateSample(0.0, 1, 2, 2, 10), StateSample(1.0, 0, 1, 5, 10), StateSample(3.0, 0, 0, 0, 10)]
    running = time_weighted(samples, lambda s: s.num_running, end_s=4.0)
    kv = time_weighted(samples, lambda s: s.kv_usage_fraction, end_s=4.0)
    assert running is not None and kv is not None
    assert (running.mean, running.max) == pytest.approx((1.0, 2.0))  # (2x1 + 1x2 + 0x1) / 4
    assert (kv.mean, kv.max) == pytest.approx((0.3, 0.5))  # (0.2x1 + 0.5x2) / 4
    assert time_weighted([], lambda s: s.num_running) is None
    assert mean_in_system(RECORDS, 0.0, 3.2) == pytest.approx((2.5 + 1.0 + 1.2) / 3.2)
    assert mean_in_system(RECORDS, 1.0, 2.0) == pytest.approx(2.0)  # r0 and r1 throughout


def test_littles_law_holds_on_a_long_stable_run() -> None:
    # Poisson at 1000 requests/s of 16-64 prompt and 1-8 output tokens, on a replica that serves
    # ~1.3 ms iterations of up to 16 sequences: about 10 requests in the system on average.
    raw = {"seed": 1, "num_requests": 20_000, "arrivals": {"kind": "poisson", "rate_per_s": 1000.0},
           "prompt_tokens": {"kind": "uniform", "low_tokens": 16, "high_tokens": 64},
           "output_tokens": {"kind": "uniform", "low_tokens": 1, "high_tokens": 8}}
    scheduler = SchedulerConfig(max_num_batched_tokens=512, max_num_seqs=16, num_blocks=256, max_model_len_tokens=512)
    run = run_serving(request_source(serving_workload_from_dict(raw)), scheduler, linear_time_s)
    metrics = serving_metrics(run.records, num_gpus=1, samples=run.samples)
    assert metrics.stability.stable and metrics.running is not None and metrics.waiting is not None
    in_system = metrics.running.mean + metrics.waiting.mean  # from the driver's state over time
    assert metrics.e2e is not None
    assert in_system == pytest.approx(1000.0 * metrics.e2e.mean_s, rel=0.02)
    window_s = (run.samples[0].time_s, run.samples[-1].time_s)  # the same count from the records alone
    assert mean_in_system(run.records, *window_s) == pytest.approx(in_system, rel=1e-9)


def _prefill_heavy(rate_per_s: float, count: int = 600) -> list[RequestRecord]:
    # 2000-token prompts, 2 output tokens, budget 2048: ~21 ms of prefill each, ~47 requests/s at most
    raw = {"seed": 0, "num_requests": count, "arrivals": {"kind": "poisson", "rate_per_s": rate_per_s},
           "prompt_tokens": {"kind": "fixed", "tokens": 2000}, "output_tokens": {"kind": "fixed", "tokens": 2}}
    scheduler = SchedulerConfig(max_num_batched_tokens=2048, max_num_seqs=32, num_blocks=4096,
                                max_model_len_tokens=4096)
    return list(run_serving(request_source(serving_workload_from_dict(raw)), scheduler, linear_time_s).records)


def test_an_overloaded_run_is_reported_unstable_not_steady() -> None:
    overloaded = _prefill_heavy(80.0)
    verdict = check_stability(overloaded)
    assert not verdict.stable and verdict.reason.startswith("unstable at this rate")
    assert verdict.in_system_last_third > 1.5 * verdict.in_system_middle_third
    assert verdict.queueing_last_third_s > 4 * verdict.queueing_first_third_s
    loose = slo_spec_from_dict({"ttft": {"p50": 1000.0}})
    metrics = serving_metrics(overloaded, num_gpus=1, slos=loose)
    assert metrics.slo_checks[0].met and not metrics.meets_slos  # within the bound, but no steady state


def test_a_loaded_but_stable_run_is_steady() -> None:
    verdict = check_stability(_prefill_heavy(38.0))  # ~80% of capacity
    assert verdict.stable and verdict.reason == "steady"
    assert check_stability(_prefill_heavy(80.0, count=20)).reason.startswith("only 20 finished")


def test_a_closed_loop_is_stable() -> None:
    raw = {"seed": 0, "num_requests": 300, "arrivals": {"kind": "closed_loop", "users": 8, "think_time_s": 0.0},
           "prompt_tokens": {"kind": "fixed", "tokens": 2000}, "output_tokens": {"kind": "fixed", "tokens": 4}}
    scheduler = SchedulerConfig(max_num_batched_tokens=2048, max_num_seqs=32, num_blocks=4096,
                                max_model_len_tokens=4096)
    run = run_serving(request_source(serving_workload_from_dict(raw)), scheduler, linear_time_s)
    assert check_stability(run.records).stable


def test_preemptions_and_rejections_are_counted_from_a_run() -> None:
    specs = requests((0.0, 8, 6), (0.0, 8, 6), (0.0, 60, 10))
    run = serve(specs, config(block_size_tokens=4, num_blocks=4, max_model_len_tokens=64, max_num_batched_tokens=64))
    metrics = serving_metrics(run.records, num_gpus=1, samples=run.samples)
    assert (metrics.preemptions, metrics.rejected, metrics.finished) == (1, 1, 2)
    assert metrics.kv_usage is not None and metrics.kv_usage.max == 1.0


def test_kv_block_pool() -> None:
    assert [blocks_for_tokens(t, 16) for t in (1, 16, 17, 32, 33)] == [1, 1, 2, 2, 3]
    pool = KvBlockPool(num_blocks=4, block_size_tokens=16)
    assert pool.grow(0, 20) and pool.held_blocks(0) == 2 and pool.usage_fraction == 0.5
    assert pool.grow(0, 32) and pool.held_blocks(0) == 2  # already holds 32 tokens' worth
    assert not pool.grow(1, 48) and pool.held_blocks(1) == 0  # 3 blocks, 2 free: nothing taken
    assert pool.grow(1, 30) and pool.free_blocks == 0
    assert pool.free(0) == 2 and pool.free(0) == 0 and pool.used_blocks == 2


def test_kv_blocks_from_memory() -> None:
    # 0.9 x 80 GB - 16 GB weights - 4 GB activations = 52 GB; a block of 16 tokens x 128 KiB = 2 MiB:
    # floor(52e9 / 2097152) = 24795, less the null block.
    assert kv_blocks_from_memory(80e9, 16e9, 4e9, 131072, 16, memory_utilization=0.9) == 24794
    assert kv_blocks_from_memory(80e9, 16e9, 4e9, 131072, 16, memory_utilization=0.9, null_blocks=0) == 24795
    assert kv_blocks_from_memory(80e9, 79e9, 4e9, 131072, 16) == 0  # weights and activations leave nothing
    assert kv_blocks_from_memory(80e9, 80e9 - 2097152, 0.0, 131072, 16) == 0  # one block, taken as null block
    assert math.isclose(52e9 / 2097152, 24795.5, rel_tol=1e-4)
