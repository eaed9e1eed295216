"""Arrival processes: when requests come (``workload.arrivals``).

* ``{kind: poisson, rate_per_s: 4.0}``: exponential gaps of mean 1/rate (coefficient of variation 1);
* ``{kind: gamma, rate_per_s: 4.0, cv: 2.0}``: Gamma gaps with shape k = 1/cv² and scale
  1/(rate·k), so the mean gap is 1/rate and the gaps' coefficient of variation is ``cv``
  (vLLM's benchmark calls k its ``burstiness``; cv > 1 is burstier than Poisson, cv < 1 smoother);
* ``{kind: closed_loop, users: 8, think_time_s: 0.5}``: N users, each with one request outstanding;
  every user sends its first request at t = 0 and its next one ``think_time_s`` after the previous
  one finished (or was rejected);
* ``{kind: trace, speedup: 1.0}``: the workload's trace's times, divided by ``speedup``.

Open-loop times are cumulative gaps from t = 0, so the first request arrives after one gap (a
Poisson process started at 0); they are not rescaled to end at N/rate (vLLM's benchmark does that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.fields import check_known_keys, non_negative_float, one_of, positive_float, positive_int, required
from topology.errors import LayerwiseError

ARRIVAL_KINDS = ("poisson", "gamma", "closed_loop", "trace")


@dataclass(frozen=True)
class PoissonArrivals:
    rate_per_s: float

    def gaps_s(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return rng.exponential(1.0 / self.rate_per_s, size=count)


@dataclass(frozen=True)
class GammaArrivals:
    """Gamma gaps of mean 1/rate and coefficient of variation ``cv`` (shape 1/cv², scale 1/(rate·shape))."""

    rate_per_s: float
    cv: float

    @property
    def shape(self) -> float:
        return 1.0 / self.cv**2

    def gaps_s(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return rng.gamma(self.shape, 1.0 / (self.rate_per_s * self.shape), size=count)


@dataclass(frozen=True)
class ClosedLoopArrivals:
    users: int
    think_time_s: float


@dataclass(frozen=True)
class TraceArrivals:
    """The trace's arrival times divided by ``speedup`` (2.0 replays twice as fast)."""

    speedup: float = 1.0


ArrivalSpec = PoissonArrivals | GammaArrivals | ClosedLoopArrivals | TraceArrivals
GapArrivals = PoissonArrivals | GammaArrivals


def arrival_times_s(
    spec: GapArrivals, rng: np.random.Generator, count: int | None = None, duration_s: float | None = None,
) -> np.ndarray:
    """Arrival times of an open-loop process from t = 0: ``count`` of them, or every one up to
    ``duration_s`` (included). Exactly one of the two."""
    if (count is None) == (duration_s is None):
        raise LayerwiseError("workload.num_requests", "give exactly one of num_requests and duration_s")
    if count is not None:
        return np.cumsum(spec.gaps_s(rng, count))
    assert duration_s is not None
    chunk = max(16, int(duration_s * spec.rate_per_s * 1.2) + 16)
    times = np.cumsum(spec.gaps_s(rng, chunk))
    while times[-1] <= duration_s:  # not past the window yet: draw more gaps from the same stream
        times = np.concatenate([times, times[-1] + np.cumsum(spec.gaps_s(rng, chunk))])
    return times[times <= duration_s]


def arrivals_from_dict(field: str, raw: Any) -> ArrivalSpec:
    """An arrival process from its mapping (see the module docstring); ``field`` names it in errors."""
    if not isinstance(raw, dict):
        raise LayerwiseError(field, f"must be a mapping with a 'kind', got {raw!r}")
    kind = one_of(f"{field}.kind", required(field, raw, "kind"), ARRIVAL_KINDS)
    if kind == "poisson":
        check_known_keys(field, raw, ("kind", "rate_per_s"))
        return PoissonArrivals(positive_float(f"{field}.rate_per_s", required(field, raw, "rate_per_s")))
    if kind == "gamma":
        check_known_keys(field, raw, ("kind", "rate_per_s", "cv"))
        rate = positive_float(f"{field}.rate_per_s", required(field, raw, "rate_per_s"))
        return GammaArrivals(rate, positive_float(f"{field}.cv", required(field, raw, "cv")))
    if kind == "closed_loop":
        check_known_keys(field, raw, ("kind", "users", "think_time_s"))
        users = positive_int(f"{field}.users", required(field, raw, "users"))
        return ClosedLoopArrivals(users, non_negative_float(f"{field}.think_time_s", raw.get("think_time_s", 0.0)))
    check_known_keys(field, raw, ("kind", "speedup"))
    return TraceArrivals(positive_float(f"{field}.speedup", raw.get("speedup", 1.0)))
