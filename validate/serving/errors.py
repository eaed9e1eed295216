"""TTFT, TPOT and E2E at p50, p90 and p99: predicted against measured, for one run.

The error of a percentile is (predicted - measured) / measured, over the finished requests of each
run (``serving.latency``'s definitions; a negative error is a prediction too fast).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.latency import LatencySummary, ServingMetrics
from validate.serving.steadiness import Steadiness

METRICS = ("ttft", "tpot", "e2e")
PERCENTILES = ("p50", "p90", "p99")


@dataclass(frozen=True)
class PercentileError:
    """One metric at one percentile of one run."""

    metric: str
    percentile: str
    measured_s: float
    predicted_s: float

    @property
    def error(self) -> float:
        return (self.predicted_s - self.measured_s) / self.measured_s


@dataclass(frozen=True)
class RunComparison:
    """One held-out run: its name, load, every percentile's error, and the throughput both ways."""

    name: str
    rate_per_s: float | None
    requests: int
    errors: tuple[PercentileError, ...]
    measured_requests_per_s: float
    predicted_requests_per_s: float
    measured_iterations: int
    predicted_iterations: int
    steadiness: Steadiness | None = None  # the measured run's spread at one decode batch size

    def error_of(self, metric: str, percentile: str) -> float | None:
        for found in self.errors:
            if found.metric == metric and found.percentile == percentile:
                return found.error
        return None


def compare(name: str, rate_per_s: float | None, measured: ServingMetrics, predicted: ServingMetrics,
            measured_iterations: int, predicted_iterations: int, steady: Steadiness | None = None) -> RunComparison:
    errors = []
    for metric in METRICS:
        ran: LatencySummary | None = getattr(measured, metric)
        sim: LatencySummary | None = getattr(predicted, metric)
        if ran is None or sim is None:
            continue
        for percentile in PERCENTILES:
            value = getattr(ran, f"{percentile}_s")
            if value > 0:
                errors.append(PercentileError(metric, percentile, value, getattr(sim, f"{percentile}_s")))
    return RunComparison(name, rate_per_s, measured.finished, tuple(errors), measured.throughput.requests_per_s,
                         predicted.throughput.requests_per_s, measured_iterations, predicted_iterations, steady)


@dataclass(frozen=True)
class ErrorSummary:
    """One metric at one percentile over held-out runs: mean |error|, the worst, and the mean signed error."""

    metric: str
    percentile: str
    runs: int
    mean_abs: float
    worst: float
    mean_signed: float


def summarize(comparisons: Sequence[RunComparison]) -> list[ErrorSummary]:
    found = []
    for metric in METRICS:
        for percentile in PERCENTILES:
            values = [e for c in comparisons if (e := c.error_of(metric, percentile)) is not None]
            if values:
                array = np.asarray(values)
                found.append(ErrorSummary(metric, percentile, len(values), float(np.abs(array).mean()),
                                          float(array[np.argmax(np.abs(array))]), float(array.mean())))
    return found
