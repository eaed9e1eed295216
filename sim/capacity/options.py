"""What a capacity search is asked: the SLOs, the objective, the GPU budget, the space and the resolution.

Objectives:

* ``rate-per-gpu``: the deployment with the highest request rate per GPU at which every SLO is met
  (the rate grid's base is the deployment's GPU count, :mod:`sim.capacity.grid`);
* ``fewest-gpus``: the fewest GPUs that meet every SLO at ``rate_per_s``; among deployments with that
  many GPUs, the one with the most headroom (highest capacity) first.

Both stay within ``gpu_budget`` GPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serving.routing import ROUTERS
from serving.slo import SloSpec
from topology.errors import LayerwiseError

RATE_PER_GPU = "rate-per-gpu"
FEWEST_GPUS = "fewest-gpus"
DEFAULT_RESOLUTION = 0.02
DEFAULT_TOP = 5
DEFAULT_WAVE = 4
DEFAULT_UNEVEN = 2
DEFAULT_MAX_WAITING_FRACTION = 0.1


@dataclass(frozen=True)
class Objective:
    kind: str  # RATE_PER_GPU or FEWEST_GPUS
    rate_per_s: float | None = None  # FEWEST_GPUS: the rate to serve

    def __post_init__(self) -> None:
        if self.kind not in (RATE_PER_GPU, FEWEST_GPUS):
            raise LayerwiseError("objective", f"must be {RATE_PER_GPU} or {FEWEST_GPUS}, got {self.kind!r}")
        if self.kind == FEWEST_GPUS:
            rate = self.rate_per_s
            if rate is None or not math.isfinite(rate) or rate <= 0:
                raise LayerwiseError("--rate", f"must be a finite number of requests/s > 0, got {rate!r}")
        elif self.rate_per_s is not None:
            raise LayerwiseError("--rate", "only applies to the fewest-GPUs objective")

    def describe(self) -> str:
        if self.kind == RATE_PER_GPU:
            return "the highest request rate per GPU that meets the SLOs"
        return f"the fewest GPUs that meet the SLOs at {self.rate_per_s:g} requests/s"


@dataclass(frozen=True)
class SpaceOptions:
    """The space: per-replica GPU counts (None: every count that fits the model), replica counts
    (None: 1, 2, 4, ... up to the budget), routers, scheduler settings, uneven plans from the plan
    search per GPU count, and disaggregated prefill/decode deployments."""

    replica_gpus: tuple[int, ...] | None = None
    replicas: tuple[int, ...] | None = None
    routers: tuple[str, ...] = ("round_robin",)
    max_num_seqs: tuple[int, ...] = (128, 256, 512)
    max_num_batched_tokens: tuple[int, ...] = (2048, 8192)
    chunked: tuple[bool, ...] = (True, False)
    uneven: int = DEFAULT_UNEVEN
    disaggregated: bool = False

    def __post_init__(self) -> None:
        for flag, values in (("--replica-gpus", self.replica_gpus), ("--replicas", self.replicas),
                             ("--max-num-seqs", self.max_num_seqs),
                             ("--max-num-batched-tokens", self.max_num_batched_tokens)):
            if values is None:
                continue
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise LayerwiseError(flag, f"must be positive integers, got {list(values)}")
        if not self.routers or any(router not in ROUTERS for router in self.routers):
            raise LayerwiseError("--routers", f"must be among {', '.join(ROUTERS)}, got {list(self.routers)}")
        if not self.chunked:
            raise LayerwiseError("--chunked", "give on, off or both")
        if isinstance(self.uneven, bool) or not isinstance(self.uneven, int) or self.uneven < 0:
            raise LayerwiseError("--uneven", f"must be an integer >= 0, got {self.uneven!r}")


@dataclass(frozen=True)
class CapacityOptions:
    """Everything the search needs besides the experiment and the basis."""

    slos: SloSpec
    objective: Objective
    gpu_budget: int
    space: SpaceOptions = SpaceOptions()
    resolution: float = DEFAULT_RESOLUTION
    top: int = DEFAULT_TOP  # deployments resolved to the resolution and ranked (others: below the K-th)
    wave: int = DEFAULT_WAVE  # tasks between two updates of the incumbents (not --jobs: results must not
    # depend on how many processes run them)
    max_waiting_fraction: float = DEFAULT_MAX_WAITING_FRACTION

    def __post_init__(self) -> None:
        if not self.slos.slos:
            raise LayerwiseError("--slo", "no SLO given and the experiment has none: give e.g. --slo ttft_p99_ms=2000")
        if isinstance(self.gpu_budget, bool) or not isinstance(self.gpu_budget, int) or self.gpu_budget < 1:
            raise LayerwiseError("--gpu-budget", f"must be a positive integer, got {self.gpu_budget!r}")
        if not (math.isfinite(self.resolution) and 0 < self.resolution <= 1):
            raise LayerwiseError("--resolution", f"must be a fraction in (0, 1] (0.02 is 2%), got {self.resolution!r}")
        for flag, value in (("--top", self.top), ("--wave", self.wave)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LayerwiseError(flag, f"must be a positive integer, got {value!r}")
        if not 0 < self.max_waiting_fraction <= 1:
            raise LayerwiseError("max_waiting_fraction", f"must be in (0, 1], got {self.max_waiting_fraction!r}")
