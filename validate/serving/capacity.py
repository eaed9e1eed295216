"""The capacity under SLOs, measured and predicted: the highest request rate whose run meets them.

**Measured**: runs of one workload at several rates (a ladder: the same experiment but for its rate and
request count). The measured capacity is bracketed: the highest ladder rate whose run meets the SLOs
with every lower rate meeting them too, and the next rate up (the first that fails; None when all meet).
A run meets the SLOs as ``serving.latency.serving_metrics`` says (every SLO met, a steady state reached).

**Predicted**: the simulator serves the requests of the ladder's largest run with their arrival instants
scaled to each rate (the same sequence of requests, denser or sparser), and bisects the rate on a
geometric scale to ``RESOLUTION``. The capacity error is how far the prediction falls outside the measured
bracket (0 inside it: the ladder cannot tell them apart), relative to the bracket's nearer end.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from serving.latency import serving_metrics
from serving.slo import SloSpec
from validate.serving.runs import MeasuredServing, PriceFn, simulate_measured

RESOLUTION = 0.01  # the predicted capacity's relative resolution
MIN_LADDER = 3  # rates a workload needs to bracket its capacity


def ladder_key(run: MeasuredServing) -> str:
    """What a ladder's runs share: the experiment but for its name, rate and request count."""
    raw = json.loads(json.dumps(run.record.experiment))
    raw.pop("name", None)
    raw.pop("description", None)
    workload = raw.get("workload", {})
    workload.pop("num_requests", None)
    arrivals = workload.get("arrivals", {})
    if isinstance(arrivals, dict):
        arrivals.pop("rate_per_s", None)
    return json.dumps(raw, sort_keys=True)


def ladders(runs: Sequence[MeasuredServing]) -> list[list[MeasuredServing]]:
    """Runs grouped by :func:`ladder_key`, each group by rate, groups of at least MIN_LADDER rates."""
    groups: dict[str, list[MeasuredServing]] = {}
    for run in runs:
        if run.rate_per_s is not None and run.rate_per_s < 100.0:  # a burst (probe) is no rate
            groups.setdefault(ladder_key(run), []).append(run)
    return [sorted(group, key=lambda r: r.rate_per_s or 0.0) for group in groups.values()
            if len({r.rate_per_s for r in group}) >= MIN_LADDER]


@dataclass(frozen=True)
class MeasuredCapacity:
    """The bracket: ``meets_up_to_per_s`` (None: even the lowest rate fails) and ``fails_at_per_s``
    (None: every rate meets), with each ladder rate's verdict."""

    meets_up_to_per_s: float | None
    fails_at_per_s: float | None
    verdicts: tuple[tuple[float, bool], ...]


def measured_capacity(ladder: Sequence[MeasuredServing], slos: SloSpec) -> MeasuredCapacity:
    verdicts = []
    for run in ladder:
        metrics = serving_metrics(run.record.run.records, num_gpus=run.num_gpus, slos=slos)
        verdicts.append((float(run.rate_per_s or 0.0), metrics.meets_slos))
    meets_up_to, fails_at = None, None
    for rate, met in verdicts:
        if not met:
            fails_at = rate
            break
        meets_up_to = rate
    return MeasuredCapacity(meets_up_to, fails_at, tuple(verdicts))


def meets_at(run: MeasuredServing, price: PriceFn, slos: SloSpec) -> Callable[[float], bool]:
    """Whether the simulated run of ``run``'s requests at a rate meets ``slos``."""
    base_rate = float(run.rate_per_s or 0.0)

    def meets(rate_per_s: float) -> bool:
        simulated = simulate_measured(run, price, scale_arrivals=base_rate / rate_per_s)
        return serving_metrics(simulated.records, num_gpus=run.num_gpus, slos=slos).meets_slos

    return meets


def bisect_capacity(meets: Callable[[float], bool], low_per_s: float, high_per_s: float,
                    resolution: float = RESOLUTION) -> float | None:
    """The highest rate in [low, high] that ``meets``, to ``resolution`` on a geometric scale (None: not even
    low; ``high`` when high meets). Assumes a rate that meets has every lower rate meeting too."""
    if not meets(low_per_s):
        return None
    if meets(high_per_s):
        return high_per_s
    while high_per_s / low_per_s > 1.0 + resolution:
        middle = math.sqrt(low_per_s * high_per_s)
        low_per_s, high_per_s = (middle, high_per_s) if meets(middle) else (low_per_s, middle)
    return low_per_s


def capacity_error(predicted_per_s: float | None, measured: MeasuredCapacity) -> float | None:
    """0 inside the measured bracket, else the relative distance to its nearer end (None: undefined)."""
    if predicted_per_s is None or measured.meets_up_to_per_s is None:
        return None
    low = measured.meets_up_to_per_s
    if predicted_per_s < low:
        return predicted_per_s / low - 1.0
    high = measured.fails_at_per_s
    if high is not None and predicted_per_s > high:
        return predicted_per_s / high - 1.0
    return 0.0


@dataclass(frozen=True)
class CapacityComparison:
    """One ladder: its runs, the measured bracket, the predicted capacity and the error."""

    runs: tuple[str, ...]
    measured: MeasuredCapacity
    predicted_per_s: float | None
    predicted_verdicts: tuple[tuple[float, bool], ...]
    error: float | None


def compare_capacity(ladder: Sequence[MeasuredServing], price: PriceFn, slos: SloSpec) -> CapacityComparison:
    measured = measured_capacity(ladder, slos)
    largest = max(ladder, key=lambda run: len(run.record.run.records))
    meets = meets_at(largest, price, slos)
    rates = [rate for rate, _ in measured.verdicts]
    predicted = bisect_capacity(meets, rates[0] / 4.0, rates[-1] * 2.0)
    verdicts = tuple((rate, meets(rate)) for rate in rates)
    return CapacityComparison(tuple(run.name for run in ladder), measured, predicted, verdicts,
                              capacity_error(predicted, measured))
