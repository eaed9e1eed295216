"""Is a run in a steady state, or is its queue growing without bound ("unstable at this rate")?

An open-loop load above capacity has no steady state: the longer the run, the longer the queue and
the latencies, so percentiles of a finite run describe its length, not the deployment. Two checks
over the arrival window [first arrival, last arrival], cut in thirds, from the records alone (so
a measured run is judged like a simulated one):

* **growing queue**: the time-average number of requests in the system over the last third exceeds
  ``growth_factor`` × that of the middle third + 1 (a queue growing linearly from empty gives 5/3;
  a stable one about 1), and the count at the last arrival is above the middle third's average;
* **growing delay**: the mean queueing delay of the requests arriving in the last third exceeds
  ``delay_factor`` × (that of the first third + the median service time, E2E − queueing).

Either marks the run unstable. Fewer than ``min_requests`` finished requests cannot be judged and
count as stable (the reason says so). A closed loop is bounded by its users and passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.occupancy import in_system_at, mean_in_system
from serving.requests import RequestRecord, RequestStatus


@dataclass(frozen=True)
class Stability:
    """The verdict and the numbers behind it (in-system counts in requests, delays in seconds)."""

    stable: bool
    reason: str
    in_system_middle_third: float
    in_system_last_third: float
    in_system_at_arrivals_end: int
    queueing_first_third_s: float
    queueing_last_third_s: float


def check_stability(records: Sequence[RequestRecord], *, growth_factor: float = 1.5, delay_factor: float = 2.0,
                    min_requests: int = 30) -> Stability:
    """Whether ``records`` come from a run that reached a steady state (module docstring)."""
    finished = [record for record in records if record.status is RequestStatus.FINISHED]
    if len(finished) < min_requests:
        return Stability(True, f"only {len(finished)} finished requests: too few to judge", 0.0, 0.0, 0, 0.0, 0.0)
    arrivals = np.asarray([record.arrival_s for record in finished])
    start_s, end_s = float(arrivals.min()), float(arrivals.max())
    third_s = (end_s - start_s) / 3.0
    if third_s <= 0.0:
        return Stability(True, "every request arrived at once: no arrival window to judge", 0.0, 0.0, 0, 0.0, 0.0)
    cut1, cut2 = start_s + third_s, start_s + 2.0 * third_s
    middle = mean_in_system(finished, cut1, cut2)
    last = mean_in_system(finished, cut2, end_s)
    at_end = int(in_system_at(finished, np.asarray([end_s]))[0])
    queueing = np.asarray([record.queueing_s for record in finished], dtype=np.float64)
    service = np.asarray([record.e2e_s for record in finished], dtype=np.float64) - queueing
    first_delay = float(queueing[arrivals <= cut1].mean())
    last_delay = float(queueing[arrivals >= cut2].mean())
    reasons = []
    if last > growth_factor * middle + 1.0 and at_end > middle:
        reasons.append(f"requests in the system grew from {middle:.1f} (middle third of the arrivals) to "
                       f"{last:.1f} (last third), {at_end} at the last arrival")
    if last_delay > delay_factor * (first_delay + float(np.median(service))):
        reasons.append(f"mean queueing delay grew from {first_delay:.3g} s (first third) to {last_delay:.3g} s "
                       f"(last third)")
    verdict = "unstable at this rate: " + "; ".join(reasons) if reasons else "steady"
    return Stability(not reasons, verdict, middle, last, at_end, first_delay, last_delay)
