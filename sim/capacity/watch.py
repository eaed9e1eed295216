"""Stopping a serving run early once its verdict is known (the simulation's one impure helper here).

A :class:`RunWatch` wraps the iteration pricer that the driver calls when it starts an iteration (the
public hook of :func:`serving.driver.run_serving`); from the iterations it sees it keeps, per request,
whether it has started, when its first and last tokens will be emitted at the earliest (an iteration
scheduled at t with duration T ends at t + T or later; exactly then with one stage), and raises
:class:`StopRun` when:

* **overloaded** (only when no TTFT or E2E SLO is given: those catch a growing queue soundly, below):
  ``max_waiting`` requests have arrived and not started at once. A capacity search calls such a run
  unstable: with only TPOT or ITL SLOs this is part of its definition of meeting them (stated in
  ``docs/capacity.md``); a stable deployment keeps a bounded queue, an overloaded one's grows with
  the run;
* **an SLO is already lost**: enough requests are certain to exceed a TTFT or E2E bound (not started
  or not finished ``bound`` after arriving, or finishing later than that at the earliest), or with one
  pipeline stage a TPOT bound, that the run's percentile must exceed it whatever the rest of the run
  does (``numpy.percentile``'s linear interpolation: with N values, once N - floor(q (N - 1)) of them
  are above the bound, so is the q-th percentile). These stops never change a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.batch import IterationPlan
from serving.driver import IterationTime
from serving.requests import RequestSpec
from serving.slo import SloSpec

CHECK_EVERY = 32  # iterations between two counts of certain violations


class StopRun(Exception):
    """The run's verdict is known before its end: ``reason`` says why it fails."""

    def __init__(self, reason: str, overloaded: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.overloaded = overloaded


def violators_needed(count: int, quantile_percent: float) -> int:
    """How many of ``count`` values above a bound put their q-th percentile above it for certain."""
    return count - math.floor(quantile_percent / 100.0 * (count - 1))


@dataclass(frozen=True)
class WatchLimits:
    """When to stop: ``max_waiting`` never-started requests at once; per metric the bound (seconds) and
    the count of certain violators that fails its percentile."""

    max_waiting: int | None  # None: no overload stop (a TTFT or E2E SLO stops an overloaded run soundly)
    ttft: tuple[float, int] | None = None
    e2e: tuple[float, int] | None = None
    tpot: tuple[float, int] | None = None


def watch_limits(requests: Sequence[RequestSpec], slos: SloSpec, max_waiting_fraction: float) -> WatchLimits:
    """The limits for the requests a deployment serves (all of them finish)."""
    count = len(requests)
    multi = sum(1 for spec in requests if spec.output_tokens >= 2)
    limits: dict[str, tuple[float, int]] = {}
    for slo in slos.slos:
        values = multi if slo.metric == "tpot" else count
        if slo.metric in ("ttft", "e2e", "tpot") and values > 0:
            needed = violators_needed(values, slo.quantile_percent)
            if slo.metric not in limits or slo.bound_s < limits[slo.metric][0]:
                limits[slo.metric] = (slo.bound_s, needed)
    latency_bound = "ttft" in limits or "e2e" in limits
    max_waiting = None if latency_bound else max(2, math.ceil(max_waiting_fraction * count))
    return WatchLimits(max_waiting=max_waiting, ttft=limits.get("ttft"), e2e=limits.get("e2e"),
                       tpot=limits.get("tpot"))


class RunWatch:
    """One run's requests, watched through the pricers it hands the driver (:meth:`timed`; a
    disaggregated run has one per pool). ``exact_ends``: every pool has one pipeline stage, so an
    iteration ends exactly at its start plus its duration (TPOT can be judged early)."""

    def __init__(self, requests: Sequence[RequestSpec], limits: WatchLimits, exact_ends: bool) -> None:
        self.limits, self.exact_ends = limits, exact_ends
        self.position = {spec.request_id: index for index, spec in enumerate(requests)}
        self.arrival_s = np.asarray([spec.arrival_s for spec in requests], dtype=np.float64)
        self.sorted_arrival_s = np.sort(self.arrival_s)
        self.outputs = np.asarray([spec.output_tokens for spec in requests], dtype=np.int64)
        self.started = np.zeros(len(requests), dtype=bool)
        self.emitted = np.zeros(len(requests), dtype=np.int64)
        self.first_s = np.full(len(requests), np.inf)  # earliest end of the first token's iteration
        self.last_s = np.full(len(requests), np.inf)  # earliest end of the last token's iteration
        self.started_count = 0
        self.calls = 0
        self.peak_waiting = 0

    def timed(self, price: IterationTime) -> IterationTime:
        """``price``, watched: what the driver calls for each iteration it starts."""
        return lambda plan: self.observe(plan, price)

    def observe(self, plan: IterationPlan, price: IterationTime) -> float | tuple[float, ...]:
        now_s = plan.scheduled_s
        waiting = int(np.searchsorted(self.sorted_arrival_s, now_s, side="right")) - self.started_count
        self.peak_waiting = max(self.peak_waiting, waiting)
        if self.limits.max_waiting is not None and waiting >= self.limits.max_waiting:
            raise StopRun(f"overloaded: {waiting} requests waiting to start at {now_s:.3g} s "
                          f"(the limit: {self.limits.max_waiting})", overloaded=True)
        answer = price(plan)  # a duration, or each stage's time (their sum: stages may also wait)
        end_s = now_s + (sum(answer) if isinstance(answer, tuple) else answer)
        for item in plan.items:
            index = self.position[item.request_id]
            if not self.started[index]:
                self.started[index] = True
                self.started_count += 1
            if item.emits_token:
                self.emitted[index] += 1
                if self.emitted[index] == 1:
                    self.first_s[index] = end_s
                if self.emitted[index] == self.outputs[index]:
                    self.last_s[index] = end_s
        self.calls += 1
        if self.calls % CHECK_EVERY == 0:
            self._check(now_s)
        return answer

    def _check(self, now_s: float) -> None:
        for name, ends_s in (("TTFT", self.first_s), ("E2E", self.last_s)):
            limit = self.limits.ttft if name == "TTFT" else self.limits.e2e
            if limit is None:
                continue
            bound_s, needed = limit
            known = np.isfinite(ends_s)
            over = int(((ends_s - self.arrival_s > bound_s) & known).sum())
            over += int((~known & (now_s - self.arrival_s > bound_s)).sum())
            if over >= needed:
                raise StopRun(f"{name} bound {bound_s * 1e3:g} ms already exceeded by {over} requests at "
                              f"{now_s:.3g} s ({needed} fail the percentile)", overloaded=False)
        if self.limits.tpot is not None and self.exact_ends:
            self._check_tpot(now_s, *self.limits.tpot)

    def _check_tpot(self, now_s: float, bound_s: float, needed: int) -> None:
        multi = self.outputs >= 2
        started = np.isfinite(self.first_s) & multi
        finished = np.isfinite(self.last_s) & multi
        gaps = np.where(finished, self.last_s, now_s) - self.first_s
        over = int((started & (gaps / np.maximum(self.outputs - 1, 1) > bound_s)).sum())
        if over >= needed:
            raise StopRun(f"TPOT bound {bound_s * 1e3:g} ms already exceeded by {over} requests at {now_s:.3g} s "
                          f"({needed} fail the percentile)", overloaded=False)
