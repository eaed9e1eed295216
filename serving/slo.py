"""Service-level objectives: a bound in seconds on a latency metric at a percentile.

As an experiment file writes them: ``slo: {ttft: {p99: 0.5}, tpot: {p90: 0.05}}`` (metric in
ttft, tpot, e2e, itl; percentile in p50, p90, p99; bounds in seconds). A run meets an SLO when the
metric's percentile over its requests is within the bound; a request meets it when its own value
is (``serving/latency.py`` says which value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serving.fields import check_known_keys, one_of, positive_float
from topology.errors import LayerwiseError

SLO_METRICS = ("ttft", "tpot", "e2e", "itl")
SLO_PERCENTILES = ("p50", "p90", "p99")
FIELD = "slo"


@dataclass(frozen=True)
class Slo:
    """``metric`` at ``percentile`` must be <= ``bound_s``."""

    metric: str
    percentile: str
    bound_s: float

    def __post_init__(self) -> None:
        one_of(f"{FIELD}.metric", self.metric, SLO_METRICS)
        one_of(f"{FIELD}.{self.metric}", self.percentile, SLO_PERCENTILES)
        positive_float(f"{FIELD}.{self.metric}.{self.percentile}", self.bound_s)

    @property
    def quantile_percent(self) -> float:
        """The percentile as a number for ``numpy.percentile`` (p90 -> 90.0)."""
        return float(self.percentile[1:])


@dataclass(frozen=True)
class SloSpec:
    """Every SLO a run must meet (empty: no SLO, every finished request counts as good)."""

    slos: tuple[Slo, ...] = ()

    def __post_init__(self) -> None:
        seen = set()
        for slo in self.slos:
            key = (slo.metric, slo.percentile)
            if key in seen:
                raise LayerwiseError(f"{FIELD}.{slo.metric}.{slo.percentile}", "given twice")
            seen.add(key)


def slo_spec_from_dict(raw: Any) -> SloSpec:
    """SLOs from a mapping metric -> {percentile: bound in seconds}."""
    check_known_keys(FIELD, raw, SLO_METRICS)
    slos: list[Slo] = []
    for metric, bounds in raw.items():
        check_known_keys(f"{FIELD}.{metric}", bounds, SLO_PERCENTILES)
        if not bounds:
            raise LayerwiseError(f"{FIELD}.{metric}", "give at least one percentile, e.g. {p99: 0.5}")
        slos.extend(Slo(metric, percentile, bound) for percentile, bound in bounds.items())
    return SloSpec(tuple(slos))
