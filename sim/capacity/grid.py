"""The rates a capacity search may test: a geometric grid, so that a stated resolution is a ratio.

Rate index ``k`` means ``base_per_s * (1 + resolution) ** k`` requests per second. A capacity is an
index: the deployment meets its SLOs at rate(k) and not at rate(k + 1), so its true capacity lies in
[rate(k), rate(k + 1)), an interval of relative width ``resolution``.

Every deployment of one search is tested on a grid with the same ratio. For the objective "most
requests per second per GPU" the base is the deployment's GPU count (1 request/s per GPU times its
GPUs), so index k is the same per-GPU rate for every deployment: two deployments with the same index
are tied at this resolution and the brute force check compares indices exactly. For "fewest GPUs at
rate R" the base is R itself (index 0 is the asked rate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from topology.errors import LayerwiseError


@dataclass(frozen=True)
class RateGrid:
    """``rate_per_s(k) = base_per_s * ratio ** k``, ``ratio = 1 + resolution``."""

    base_per_s: float
    resolution: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base_per_s) and self.base_per_s > 0):
            raise LayerwiseError("rate grid", f"base rate must be > 0, got {self.base_per_s!r}")
        if not (math.isfinite(self.resolution) and 0 < self.resolution <= 1):
            raise LayerwiseError("--resolution", f"must be in (0, 1] (a fraction: 0.02 is 2%), got {self.resolution!r}")

    @property
    def ratio(self) -> float:
        return 1.0 + self.resolution

    def rate_per_s(self, index: int) -> float:
        return self.base_per_s * self.ratio ** index

    def index_at_or_below(self, rate_per_s: float) -> int:
        """The largest k with rate(k) <= ``rate_per_s`` (a bound's index: nothing above it can pass)."""
        if rate_per_s <= 0:
            raise LayerwiseError("rate grid", f"rate must be > 0, got {rate_per_s!r}")
        k = math.floor(math.log(rate_per_s / self.base_per_s) / math.log(self.ratio))
        while self.rate_per_s(k + 1) <= rate_per_s:  # guard the logarithm's rounding
            k += 1
        while self.rate_per_s(k) > rate_per_s:
            k -= 1
        return k

    def steps_for_factor(self, factor: float) -> int:
        """How many indices make up a rate ratio of ``factor`` (rounded up)."""
        return max(1, math.ceil(math.log(factor) / math.log(self.ratio) - 1e-9))
