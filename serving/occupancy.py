"""How full a deployment was over time: time-weighted means and maxima of the driver's state
samples (KV usage, running and waiting requests), and the time-average number of requests in the
system from request records alone (Little's law: L = λ·W, which a stable run must satisfy).

A sample holds from its own time until the next sample; the last one until ``end_s``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from serving.requests import RequestRecord, RequestStatus
from topology.errors import LayerwiseError


@dataclass(frozen=True)
class StateSample:
    """All replicas together from ``time_s`` until the next sample: requests waiting, running
    (admitted, in flight or not), KV blocks in use and in the pools."""

    time_s: float
    num_waiting: int
    num_running: int
    kv_blocks_used: int
    kv_blocks_total: int

    @property
    def num_in_system(self) -> int:
        return self.num_waiting + self.num_running

    @property
    def kv_usage_fraction(self) -> float:
        return self.kv_blocks_used / self.kv_blocks_total


@dataclass(frozen=True)
class TimeWeighted:
    """A quantity over a window: its time-weighted mean and its largest value."""

    mean: float
    max: float


def time_weighted(samples: Sequence[StateSample], value: Callable[[StateSample], float],
                  end_s: float | None = None) -> TimeWeighted | None:
    """The time-weighted mean and the maximum of ``value`` over [first sample, ``end_s``] (default:
    the last sample's time); None if there are no samples or the window is empty."""
    if not samples:
        return None
    times = np.asarray([sample.time_s for sample in samples], dtype=np.float64)
    end = float(times[-1]) if end_s is None else end_s
    if end < times[-1]:
        raise LayerwiseError("end_s", f"{end!r} is before the last sample at {float(times[-1])!r} s")
    widths = np.diff(np.append(times, end))
    values = np.asarray([value(sample) for sample in samples], dtype=np.float64)
    if widths.sum() <= 0.0:
        return None
    return TimeWeighted(mean=float(np.dot(widths, values) / widths.sum()), max=float(values.max()))


def in_system_intervals(records: Sequence[RequestRecord]) -> list[tuple[float, float]]:
    """(arrival, finish) of every finished request: the times it counts as in the system."""
    return [(record.arrival_s, record.finish_s) for record in records
            if record.status is RequestStatus.FINISHED and record.finish_s is not None]


def mean_in_system(records: Sequence[RequestRecord], start_s: float, end_s: float) -> float:
    """The time-average number of requests in the system over [start_s, end_s]: each finished
    request counts from arrival to finish (rejected ones never enter). Little's law: over a long
    stable run this equals the arrival rate times the mean E2E latency."""
    if not end_s > start_s:
        raise LayerwiseError("end_s", f"{end_s!r} must be after start_s {start_s!r}")
    inside = sum(max(0.0, min(finish, end_s) - max(arrival, start_s))
                 for arrival, finish in in_system_intervals(records))
    return inside / (end_s - start_s)


def in_system_at(records: Sequence[RequestRecord], times_s: np.ndarray) -> np.ndarray:
    """Requests in the system (arrived, not finished) at each of ``times_s``, from the records."""
    intervals = in_system_intervals(records)
    arrivals = np.sort(np.asarray([arrival for arrival, _ in intervals], dtype=np.float64))
    finishes = np.sort(np.asarray([finish for _, finish in intervals], dtype=np.float64))
    arrived = np.searchsorted(arrivals, times_s, side="right")
    left = np.searchsorted(finishes, times_s, side="right")
    return arrived - left
