"""Serving metrics, with the definitions of vLLM's benchmark (``vllm/benchmarks/serve.py``).

Per finished request (times in seconds; rejected requests are counted, never timed):

* TTFT = first token − arrival;
* TPOT = (E2E − TTFT) / (output tokens − 1); requests with one output token have no TPOT (left out
  of TPOT statistics; for goodput their TPOT counts as met);
* ITL = the gaps between a request's consecutive tokens; the statistics pool every gap of every
  request (a request of n tokens gives n − 1 gaps);
* E2E = last token (finish) − arrival;
* queueing delay = first scheduled − arrival.

Each is summarised by its mean and its 50th, 90th, 95th and 99th percentiles
(``numpy.percentile``, linear interpolation). Throughput divides by the run's duration, by
default first arrival to last finish: finished requests per second, output tokens per second, and
output tokens per second per GPU (the GPU count is the caller's: replicas × GPUs per replica).

Goodput = finished requests meeting every SLO per second. A request meets an SLO on ttft, tpot or
e2e when its own value is within the bound, and one on itl when its own gaps' percentile (the SLO's)
is (one-token requests meet both); the SLO's percentile matters for the run's check, which compares
the percentile over all requests (pooled gaps for itl) with the bound. A run meets its SLOs when
every check passes *and* it is stable (``serving/stability.py``): an unstable run has no steady
state, so its finite-run percentiles promise nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.fields import positive_float, positive_int
from serving.occupancy import StateSample, TimeWeighted, time_weighted
from serving.requests import RequestRecord, RequestStatus
from serving.slo import Slo, SloSpec
from serving.stability import Stability, check_stability

SUMMARY_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


@dataclass(frozen=True)
class LatencySummary:
    """One metric over a run: how many values, their mean and percentiles (seconds)."""

    count: int
    mean_s: float
    p50_s: float
    p90_s: float
    p95_s: float
    p99_s: float


def summarize_s(values_s: Sequence[float]) -> LatencySummary | None:
    """Mean and percentiles of ``values_s``; None when there are none (vLLM prints 0 instead)."""
    if len(values_s) == 0:
        return None
    values = np.asarray(values_s, dtype=np.float64)
    p50, p90, p95, p99 = (float(v) for v in np.percentile(values, SUMMARY_PERCENTILES))
    return LatencySummary(count=len(values), mean_s=float(values.mean()), p50_s=p50, p90_s=p90, p95_s=p95, p99_s=p99)


def finished_records(records: Sequence[RequestRecord]) -> list[RequestRecord]:
    return [record for record in records if record.status is RequestStatus.FINISHED]


def metric_values_s(records: Sequence[RequestRecord], metric: str) -> list[float]:
    """Every value of ``metric`` (ttft, tpot, e2e, itl, queueing) over the finished requests."""
    finished = finished_records(records)
    if metric == "itl":
        return [gap for record in finished for gap in record.itl_s]
    getters = {"ttft": lambda r: r.ttft_s, "tpot": lambda r: r.tpot_s, "e2e": lambda r: r.e2e_s,
               "queueing": lambda r: r.queueing_s}
    values = (getters[metric](record) for record in finished)
    return [value for value in values if value is not None]


def request_meets(record: RequestRecord, slo: Slo) -> bool:
    """Whether one finished request meets ``slo`` by its own value (module docstring)."""
    if slo.metric == "itl":
        gaps = record.itl_s
        return not gaps or float(np.percentile(gaps, slo.quantile_percent)) <= slo.bound_s
    own = {"ttft": record.ttft_s, "tpot": record.tpot_s, "e2e": record.e2e_s}[slo.metric]
    if own is None:  # only TPOT of a one-token request: vLLM counts it as met
        return slo.metric == "tpot"
    return own <= slo.bound_s


@dataclass(frozen=True)
class SloCheck:
    """One SLO against the run: the metric's percentile over all requests and whether it is within bound."""

    slo: Slo
    value_s: float | None
    met: bool


@dataclass(frozen=True)
class Throughput:
    duration_s: float
    requests_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    output_tokens_per_s_per_gpu: float


def throughput(records: Sequence[RequestRecord], num_gpus: int, duration_s: float | None = None) -> Throughput:
    """Finished requests and tokens per second over ``duration_s`` (default first arrival to last finish)."""
    gpus = positive_int("num_gpus", num_gpus)
    finished = finished_records(records)
    window_s = run_duration_s(records) if duration_s is None else positive_float("duration_s", duration_s)
    output = sum(record.output_tokens for record in finished)
    prompt = sum(record.prompt_tokens for record in finished)
    if window_s <= 0.0:
        return Throughput(window_s, 0.0, 0.0, 0.0, 0.0)
    return Throughput(duration_s=window_s, requests_per_s=len(finished) / window_s,
                      output_tokens_per_s=output / window_s, total_tokens_per_s=(prompt + output) / window_s,
                      output_tokens_per_s_per_gpu=output / window_s / gpus)


def run_duration_s(records: Sequence[RequestRecord]) -> float:
    """First arrival to last finish (0 if nothing finished)."""
    finishes = [record.finish_s for record in records if record.finish_s is not None]
    if not finishes:
        return 0.0
    return max(finishes) - min(record.arrival_s for record in records)


@dataclass(frozen=True)
class ServingMetrics:
    """Everything one run reports. Latency summaries are None when the run has no such value;
    occupancy (KV usage fraction, running and waiting counts) is None without state samples."""

    ttft: LatencySummary | None
    tpot: LatencySummary | None
    itl: LatencySummary | None
    e2e: LatencySummary | None
    queueing: LatencySummary | None
    throughput: Throughput
    goodput_requests_per_s: float
    slo_attainment: float
    slo_checks: tuple[SloCheck, ...]
    meets_slos: bool
    finished: int
    rejected: int
    preemptions: int
    preempted_requests: int
    kv_usage: TimeWeighted | None
    running: TimeWeighted | None
    waiting: TimeWeighted | None
    stability: Stability


def serving_metrics(
    records: Sequence[RequestRecord],
    *,
    num_gpus: int,
    slos: SloSpec = SloSpec(),  # noqa: B008  (a frozen value, safe as a default)
    samples: Sequence[StateSample] = (),
    duration_s: float | None = None,
) -> ServingMetrics:
    """The metrics of one run from its request records (and the driver's state samples, if any)."""
    finished = finished_records(records)
    rate = throughput(records, num_gpus, duration_s)
    good = [record for record in finished if all(request_meets(record, slo) for slo in slos.slos)]
    checks = tuple(_check(records, slo) for slo in slos.slos)
    stability = check_stability(records)
    end_s = max((record.finish_s for record in finished if record.finish_s is not None), default=None)
    if samples and end_s is not None:
        end_s = max(end_s, samples[-1].time_s)
    return ServingMetrics(
        ttft=summarize_s(metric_values_s(records, "ttft")), tpot=summarize_s(metric_values_s(records, "tpot")),
        itl=summarize_s(metric_values_s(records, "itl")), e2e=summarize_s(metric_values_s(records, "e2e")),
        queueing=summarize_s(metric_values_s(records, "queueing")), throughput=rate,
        goodput_requests_per_s=len(good) / rate.duration_s if rate.duration_s > 0 else 0.0,
        slo_attainment=len(good) / len(finished) if finished else 0.0, slo_checks=checks,
        meets_slos=stability.stable and all(check.met for check in checks) and bool(finished),
        finished=len(finished), rejected=sum(record.status is RequestStatus.REJECTED for record in records),
        preemptions=sum(record.preemptions for record in records),
        preempted_requests=sum(record.preemptions > 0 for record in records),
        kv_usage=time_weighted(samples, lambda sample: sample.kv_usage_fraction, end_s) if samples else None,
        running=time_weighted(samples, lambda sample: sample.num_running, end_s) if samples else None,
        waiting=time_weighted(samples, lambda sample: sample.num_waiting, end_s) if samples else None,
        stability=stability,
    )


def _check(records: Sequence[RequestRecord], slo: Slo) -> SloCheck:
    values = metric_values_s(records, slo.metric)
    if not values:  # no value (e.g. no TPOT when every request has one token): nothing to exceed
        return SloCheck(slo, None, True)
    value = float(np.percentile(values, slo.quantile_percent))
    return SloCheck(slo, value, value <= slo.bound_s)
