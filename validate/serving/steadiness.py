"""How steady a measured run's iterations were: the spread of decode-only iterations of one batch size.

Iterations of the same batch (decode only, the same number of sequences) cost the simulator nearly the
same; on the hardware they may not. For each run, take its most frequent decode-only batch size and
report the 10th, 50th and 90th percentiles of those iterations' durations. A p90/p10 well above 1 is
variation the simulator, deterministic by design, does not model: it bounds how closely any prediction
of that run's latency percentiles can agree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from serving.batch import DECODE
from serving.driver import ServingRun


@dataclass(frozen=True)
class Steadiness:
    """Decode-only iterations of ``batch_size`` sequences in one run: how many, and their duration spread."""

    batch_size: int
    iterations: int
    p10_s: float
    p50_s: float
    p90_s: float

    @property
    def spread(self) -> float:
        """p90 / p10 (1: every such iteration took the same time)."""
        return self.p90_s / self.p10_s


def steadiness(run: ServingRun) -> Steadiness | None:
    """The spread at the run's most frequent decode-only batch size (ties: the smaller); None without decodes."""
    by_size: dict[int, list[float]] = {}
    for iteration in run.iterations:
        if iteration.plan.items and all(item.kind == DECODE for item in iteration.plan.items):
            by_size.setdefault(len(iteration.plan.items), []).append(iteration.duration_s)
    if not by_size:
        return None
    counts = Counter({size: len(values) for size, values in by_size.items()})
    size = min(counts, key=lambda s: (-counts[s], s))
    p10, p50, p90 = (float(v) for v in np.percentile(np.asarray(by_size[size]), (10, 50, 90)))
    return Steadiness(size, counts[size], p10, p50, p90)
