"""What a plan search returns: its candidates, as the twin scored them and the events ran them."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.search.dp import Scored
from topology.accuracy import RegimeError
from topology.partition.space import Layout
from topology.plan import Plan

SEARCH_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SearchOptions:
    """What to search: how many finalists, on how many GPUs, under which limits, in which family."""

    top_k: int = 10
    gpus: int | None = None  # search on the first N GPUs (default: the whole cluster)
    max_tpot_s: float | None = None  # decode: the time between a sequence's tokens
    max_ttft_s: float | None = None  # prefill: the mean time to first token
    family: str = "all"  # "all", "tp-pp" or "layer-wise" (sim.search.families)
    microbatches: int | None = None  # fix the microbatch count (default: every divisor of the batch)


@dataclass(frozen=True)
class Prediction:
    """A plan's figures under one estimator (the twin or the event simulation)."""

    estimator: str  # "twin" or "events"
    tokens_per_s: float
    step_s: float
    tpot_s: float | None  # decode
    ttft_s: float | None  # prefill
    dominant_cost: str | None = None  # events only: the largest part of the busiest device's step
    breakdown_s: dict[str, float] = field(default_factory=dict)  # events only


@dataclass(frozen=True)
class Candidate:
    """One plan the search considered."""

    origin: str  # "search", "tp-pp family", "layer-wise family" or "experiment: <plan name>"
    layout: Layout
    plan: Plan
    scored: Scored  # the twin's cycle, bottleneck and step
    twin: Prediction
    events: Prediction | None  # finalists only
    ties: int  # other layouts of the space with the same twin step (not listed)
    components: tuple[str, ...]  # what the step depends on (topology.accuracy.COMPONENTS)
    unvalidated: tuple[str, ...]  # of those, what no validation run exercised

    @property
    def prediction(self) -> Prediction:
        """The events' figures where they ran, else the twin's."""
        return self.events if self.events is not None else self.twin

    @property
    def gpus(self) -> int:
        return self.layout.num_gpus

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.prediction.tokens_per_s / self.gpus


@dataclass(frozen=True)
class SearchResult:
    experiment: str
    model: str
    cluster: str
    phase: str
    regime: str  # topology.accuracy.regime_of the workload
    options: SearchOptions
    space_size: int  # layouts in the space (HBM fit not checked)
    states_visited: int  # DP states the twin expanded
    ranked: tuple[Candidate, ...]  # finalists meeting the limits, fastest first under the events
    over_limits: tuple[Candidate, ...]  # finalists the events put over a TPOT / TTFT limit
    scored: tuple[Scored, ...]  # every plan the twin scored in full (for the Pareto plot)
    band: RegimeError | None  # the held-out error of this regime, if the profile carries one
    resolution: str  # whether the simulator resolves the ranking at the top, and what would
    parameters: str  # what the cost model's parameters come from
    wall_s: float

    @property
    def best(self) -> Candidate:
        return self.ranked[0]
