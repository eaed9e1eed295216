"""L2 residency of a stage's weights, by LRU reuse distance.

Rule: a weight byte is read at L2 speed only if it is still in L2 when it is used again.
Between two uses of the same weight (consecutive passes of microbatches, or consecutive
decode steps, through the stage) the device touches the stage's weights ``W`` plus the
bytes it streams in one pass ``S`` (KV cache read and written, activations). With reuse
distance ``D = W + S``:

* ``D <= C`` (``C`` = the residency capacity): every weight hits, ``hit = 1``;
* otherwise the share of the weights that fits beside the streamed bytes stays resident,
  ``hit = clamp((C - S) / W, 0, 1)`` (a partial fit; pure LRU would thrash to 0 on a cyclic
  pattern, but a real L2's adaptive insertion keeps a resident subset); when the streamed
  bytes alone exceed ``C`` nothing survives and ``hit = 0``.

``C`` is the usable L2. Shared memory (SRAM) is added to ``C`` only when the plan's cache-fit
capacity counted it; shared memory does not persist across kernels, so this is the seed's
assumption, reported as such, not a Hopper behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

from topology.plan import Plan
from topology.results import StageResidency


@dataclass(frozen=True)
class Residency:
    weights_bytes: int  # W: the stage's weights on one device
    streamed_bytes_per_pass: int  # S: KV read + written and activations in one microbatch pass
    capacity_bytes: float  # C
    sram_counted: bool  # whether C includes shared memory (the plan said so)
    hit_fraction: float  # share of weight reads served by L2

    @property
    def fit(self) -> str:
        if self.hit_fraction >= 1.0:
            return "full"
        return "partial" if self.hit_fraction > 0.0 else "none"

    def summary(self, stage: int) -> StageResidency:
        """The result's record of one stage's residency."""
        return StageResidency(stage=stage, weights_bytes=self.weights_bytes,
                              streamed_bytes_per_pass=self.streamed_bytes_per_pass, capacity_bytes=self.capacity_bytes,
                              sram_counted=self.sram_counted, hit_fraction=self.hit_fraction)


def plan_counts_sram(plan: Plan) -> bool:
    """Whether the plan's cache-fit capacity counted shared memory (the seed's assumption)."""
    return plan.partitioner == "cache-fit" and plan.fit_capacity_bytes in (
        plan.device_sram_bytes,
        plan.device_l2_usable_bytes + plan.device_sram_bytes,
    )


def residency_capacity_bytes(l2_usable_bytes: float, sram_bytes: int, sram_counted: bool) -> float:
    """Usable L2, plus all shared memory when the plan counted it."""
    return l2_usable_bytes + sram_bytes if sram_counted else l2_usable_bytes


def weight_hit_fraction(weights_bytes: int, streamed_bytes: int, capacity_bytes: float) -> float:
    if weights_bytes <= 0:
        return 0.0
    if weights_bytes + streamed_bytes <= capacity_bytes:
        return 1.0
    return min(1.0, max(0.0, (capacity_bytes - streamed_bytes) / weights_bytes))


def residency(weights_bytes: int, streamed_bytes: int, capacity_bytes: float, sram_counted: bool) -> Residency:
    return Residency(
        weights_bytes=weights_bytes,
        streamed_bytes_per_pass=streamed_bytes,
        capacity_bytes=capacity_bytes,
        sram_counted=sram_counted,
        hit_fraction=weight_hit_fraction(weights_bytes, streamed_bytes, capacity_bytes),
    )
