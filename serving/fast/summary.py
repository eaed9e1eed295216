"""A fast run kept as a summary: for runs too large to keep every token time (a million requests
decode about 2e8 tokens) or every iteration, in memory that grows with the requests (a row of a
``RequestTable`` each) and the iterations (a few counted gaps each), not with the tokens.

What is kept, and how exact the metrics are against ``serving.latency.serving_metrics`` of the same
run's records:

* every request's arrival, first scheduling, first token, finish, preemptions, replica
  (``RequestTable``): TTFT, TPOT, E2E, queueing, throughput, goodput, the SLO checks, the counts and
  the stability verdict are the same numbers (the same columns, the same float operations);
* the pooled inter-token gaps as counts (``GapCounts``): a cohort's step adds one gap for all its
  members that emitted its previous step too, and each other token its own gap. The ITL
  percentiles are the same numbers (``weighted_percentiles`` is numpy's linear interpolation on the
  sorted gaps, by counts); the ITL mean differs by float rounding only (a weighted sum, not numpy's
  pairwise sum over every gap);
* a request's own gap percentile, only for the percentiles of ITL SLOs (worked out at its finish);
* the state over time as running time integrals (KV usage, running, waiting): means equal to
  rounding, maxima exact; no sample list;
* iterations: their count.

Nothing else (no per-token time, no iteration record, no state sample) is kept.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.fast.replica import FastReplica, Launched
from serving.fast.state import LiveRequest
from serving.latency import (
    SUMMARY_PERCENTILES,
    LatencySummary,
    ServingMetrics,
    SloCheck,
    Throughput,
    summarize_s,
)
from serving.occupancy import TimeWeighted
from serving.request_table import RequestTable, own_itl_percentile_s
from serving.slo import Slo, SloSpec
from serving.stability import stability_of


class GapCounts:
    """Inter-token gaps as (gap, how many tokens had it) pairs (a ``GapSink``)."""

    def __init__(self) -> None:
        self._gaps_s: array[float] = array("d")
        self._counts: array[int] = array("q")

    def add(self, gap_s: float, count: int) -> None:
        self._gaps_s.append(gap_s)
        self._counts.append(count)

    def distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct gaps (ascending) and how many tokens had each."""
        gaps = np.frombuffer(self._gaps_s, dtype=np.float64) if len(self._gaps_s) else np.empty(0)
        counts = np.frombuffer(self._counts, dtype=np.int64) if len(self._counts) else np.empty(0, dtype=np.int64)
        values, where = np.unique(gaps, return_inverse=True)
        return values, np.bincount(where.ravel(), weights=counts, minlength=len(values)).astype(np.int64)


def weighted_percentiles(values: np.ndarray, counts: np.ndarray, percents: Sequence[float]) -> list[float]:
    """``numpy.percentile(np.repeat(values, counts), percents)`` (method linear) without the repeat:
    ``values`` ascending, ``counts`` >= 1. The same virtual index ``(n - 1) q / 100``, the same two
    neighbours and numpy's own interpolation (``_lerp``)."""
    n = int(counts.sum())
    ends = np.cumsum(counts)  # the sorted sample's index past each value's last copy
    found = []
    for percent in percents:
        virtual = (n - 1) * np.true_divide(percent, 100)
        below = math.floor(virtual)
        gamma = virtual - below
        low = float(values[np.searchsorted(ends, below, side="right")])
        high = float(values[np.searchsorted(ends, min(below + 1, n - 1), side="right")])
        found.append(_lerp(low, high, float(gamma)))
    return found


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's ``_lerp`` (``numpy/lib/_function_base_impl.py``) on floats."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def gap_summary(values: np.ndarray, counts: np.ndarray) -> LatencySummary | None:
    """``summarize_s`` of every gap, from the counted distribution (the mean to float rounding)."""
    n = int(counts.sum())
    if n == 0:
        return None
    p50, p90, p95, p99 = weighted_percentiles(values, counts, SUMMARY_PERCENTILES)
    return LatencySummary(count=n, mean_s=float(np.dot(values, counts) / n), p50_s=p50, p90_s=p90, p95_s=p95,
                          p99_s=p99)


class _Integral:
    """One state quantity integrated over time from the samples (``serving.occupancy.time_weighted``)."""

    def __init__(self) -> None:
        self.first_s = math.nan
        self.last_s = math.nan
        self.value = 0.0
        self.area = 0.0
        self.max = -math.inf

    def sample(self, time_s: float, value: float) -> None:
        if self.first_s != self.first_s:  # NaN: the first sample
            self.first_s = time_s
        else:
            self.area += (time_s - self.last_s) * self.value
        self.last_s, self.value = time_s, value
        self.max = max(self.max, value)

    def result(self, end_s: float) -> TimeWeighted | None:
        if self.first_s != self.first_s:
            return None
        width = end_s - self.first_s
        if width <= 0.0:
            return None
        return TimeWeighted(mean=(self.area + (end_s - self.last_s) * self.value) / width, max=self.max)


@dataclass(frozen=True)
class ServingSummary:
    """A run kept as a summary (module docstring). ``rejections``: (request id, why) of each rejected request."""

    requests: RequestTable
    itl_gaps_s: np.ndarray
    itl_gap_counts: np.ndarray
    rejections: tuple[tuple[int, str], ...]
    iterations: int
    kv_usage: TimeWeighted | None
    running: TimeWeighted | None
    waiting: TimeWeighted | None
    replicas: int
    pipeline_depth: int


class SummaryRecorder:
    """Collects a fast run as a ``ServingSummary``; ``itl_percents``: own-gap percentiles to keep per request."""

    trace = False

    def __init__(self, kv_blocks_total: int, itl_percents: Sequence[float] = ()) -> None:
        self.gaps = GapCounts()
        self._kv_blocks_total = kv_blocks_total
        self._itl_percents = tuple(itl_percents)
        self._floats: dict[str, array[float]] = {name: array("d") for name in (
            "arrival_s", "first_scheduled_s", "first_token_s", "finish_s")}
        self._ints: dict[str, array[int]] = {name: array("q") for name in (
            "request_id", "prompt_tokens", "output_tokens", "finished", "preemptions", "replica")}
        self._own: dict[float, array[float]] = {percent: array("d") for percent in self._itl_percents}
        self._rejections: list[tuple[int, str]] = []
        self._iterations = 0
        self._kv = _Integral()
        self._running = _Integral()
        self._waiting = _Integral()

    def _row(self, request: LiveRequest, finished: bool, first_token_s: float, finish_s: float, replica: int) -> None:
        floats, ints = self._floats, self._ints
        first = request.first_scheduled_s
        floats["arrival_s"].append(request.arrival_s)
        floats["first_scheduled_s"].append(math.nan if first is None or not finished else first)
        floats["first_token_s"].append(first_token_s)
        floats["finish_s"].append(finish_s)
        for name, value in (("request_id", request.request_id), ("prompt_tokens", request.prompt_tokens),
                            ("output_tokens", request.output_tokens), ("finished", int(finished)),
                            ("preemptions", request.preemptions if finished else 0), ("replica", replica)):
            ints[name].append(value)

    def finished(self, request: LiveRequest, finish_s: float, replica: int) -> None:
        self._row(request, True, request.first_token_s, finish_s, replica)
        if self._itl_percents:
            times = request.token_times_s()
            for percent in self._itl_percents:
                self._own[percent].append(own_itl_percentile_s(times, percent))
        request.pieces = []  # its token times are no longer needed

    def rejected(self, request: LiveRequest, reason: str, replica: int) -> None:
        self._row(request, False, math.nan, math.nan, replica)
        for percent in self._itl_percents:
            self._own[percent].append(math.nan)
        self._rejections.append((request.request_id, reason))

    def iteration(self, replica: FastReplica, launched: Launched, start_s: float, end_s: float,
                  duration_s: float) -> None:
        self._iterations += 1

    def sample(self, time_s: float, num_waiting: int, num_running: int, kv_blocks_used: int) -> None:
        self._kv.sample(time_s, kv_blocks_used / self._kv_blocks_total)
        self._running.sample(time_s, num_running)
        self._waiting.sample(time_s, num_waiting)

    def summary(self, replicas: int, pipeline_depth: int) -> ServingSummary:
        ints = {name: np.frombuffer(values, dtype=np.int64) if len(values) else np.empty(0, dtype=np.int64)
                for name, values in self._ints.items()}
        floats = {name: np.frombuffer(values, dtype=np.float64) if len(values) else np.empty(0)
                  for name, values in self._floats.items()}
        order = np.argsort(ints["request_id"], kind="stable")
        own = {percent: np.frombuffer(values, dtype=np.float64)[order] if len(values) else np.empty(0)
               for percent, values in self._own.items()}
        table = RequestTable(
            request_id=ints["request_id"][order], arrival_s=floats["arrival_s"][order],
            prompt_tokens=ints["prompt_tokens"][order], output_tokens=ints["output_tokens"][order],
            finished=ints["finished"][order].astype(bool), first_scheduled_s=floats["first_scheduled_s"][order],
            first_token_s=floats["first_token_s"][order], finish_s=floats["finish_s"][order],
            preemptions=ints["preemptions"][order], replica=ints["replica"][order], own_itl_s=own)
        finishes = table.finish_s[table.finished]
        end_s = max(float(finishes.max()) if len(finishes) else -math.inf, self._kv.last_s)
        values, counts = self.gaps.distribution()
        return ServingSummary(requests=table, itl_gaps_s=values, itl_gap_counts=counts,
                              rejections=tuple(self._rejections), iterations=self._iterations,
                              kv_usage=self._kv.result(end_s), running=self._running.result(end_s),
                              waiting=self._waiting.result(end_s), replicas=replicas, pipeline_depth=pipeline_depth)


def summary_metrics(summary: ServingSummary, *, num_gpus: int, slos: SloSpec = SloSpec()) -> ServingMetrics:  # noqa: B008
    """``serving.latency.serving_metrics`` of a summarised run (module docstring: what is exact)."""
    table = summary.requests
    done = table.finished
    finished = int(done.sum())
    finishes = table.finish_s[done]
    window_s = float(finishes.max()) - float(table.arrival_s.min()) if finished else 0.0
    output = int(table.output_tokens[done].sum())
    prompt = int(table.prompt_tokens[done].sum())
    if window_s <= 0.0:
        rate = Throughput(window_s, 0.0, 0.0, 0.0, 0.0)
    else:
        rate = Throughput(duration_s=window_s, requests_per_s=finished / window_s,
                          output_tokens_per_s=output / window_s, total_tokens_per_s=(prompt + output) / window_s,
                          output_tokens_per_s_per_gpu=output / window_s / num_gpus)
    good = _meets_every_slo(table, slos.slos)
    checks = tuple(_check(summary, slo) for slo in slos.slos)
    stability = stability_of(table.arrival_s[done], finishes, table.first_scheduled_s[done])
    return ServingMetrics(
        ttft=summarize_s(table.values_s("ttft")), tpot=summarize_s(table.values_s("tpot")),
        itl=gap_summary(summary.itl_gaps_s, summary.itl_gap_counts), e2e=summarize_s(table.values_s("e2e")),
        queueing=summarize_s(table.values_s("queueing")), throughput=rate,
        goodput_requests_per_s=good / rate.duration_s if rate.duration_s > 0 else 0.0,
        slo_attainment=good / finished if finished else 0.0, slo_checks=checks,
        meets_slos=stability.stable and all(check.met for check in checks) and finished > 0,
        finished=finished, rejected=len(table) - finished, preemptions=int(table.preemptions.sum()),
        preempted_requests=int((table.preemptions > 0).sum()), kv_usage=summary.kv_usage, running=summary.running,
        waiting=summary.waiting, stability=stability)


def _meets_every_slo(table: RequestTable, slos: Sequence[Slo]) -> int:
    """Finished requests within every SLO by their own value (``serving.latency.request_meets``)."""
    done = table.finished
    good = done.copy()
    arrival = table.arrival_s
    for slo in slos:
        if slo.metric == "ttft":
            good &= (table.first_token_s - arrival) <= slo.bound_s
        elif slo.metric == "e2e":
            good &= (table.finish_s - arrival) <= slo.bound_s
        elif slo.metric == "tpot":
            several = table.output_tokens >= 2
            tpot = (table.finish_s - table.first_token_s) / np.maximum(table.output_tokens - 1, 1)
            good &= ~several | (tpot <= slo.bound_s)
        else:
            own = table.own_itl_s[slo.quantile_percent]
            good &= np.isnan(own) | (own <= slo.bound_s)
    return int((good & done).sum())


def _check(summary: ServingSummary, slo: Slo) -> SloCheck:
    if slo.metric == "itl":
        if not len(summary.itl_gaps_s):
            return SloCheck(slo, None, True)
        value = weighted_percentiles(summary.itl_gaps_s, summary.itl_gap_counts, (slo.quantile_percent,))[0]
        return SloCheck(slo, value, value <= slo.bound_s)
    values = summary.requests.values_s(slo.metric)
    if not len(values):
        return SloCheck(slo, None, True)
    value = float(np.percentile(values, slo.quantile_percent))
    return SloCheck(slo, value, value <= slo.bound_s)
