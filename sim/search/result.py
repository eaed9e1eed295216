"""What a plan search returns: its candidates, as the twin scored them and the events ran them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sim.search.dp import Scored
from sim.search.options import SearchOptions
from topology.accuracy import RegimeError
from topology.partition.space import Layout
from topology.plan import Plan

SEARCH_SCHEMA_VERSION = 1


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
    events_per_batch: float | None = None  # events only: collectives + stage-to-stage sends per iteration
    l2_fit: str | None = None  # events only: which stages keep their weights in L2
    l2_tightest: tuple[int, float, int] | None = None  # events only: the stage with the least weights:
    # (weights bytes, L2 capacity bytes, bytes it streams per pass)


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
    band: RegimeError | None = None  # the held-out band its prediction carries (topology.accuracy.band_for)
    band_note: str = ""  # why it has none, where that is known ("outside measured shapes ...")

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
    tokens_per_iteration: int  # decode: the batch; prefill: batch x prompt
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


def _prediction_dict(prediction: Prediction | None) -> dict[str, Any] | None:
    return None if prediction is None else asdict(prediction)


def candidate_to_dict(candidate: Candidate, best_tokens_per_s: float) -> dict[str, Any]:
    p = candidate.prediction
    return {
        "origin": candidate.origin,
        "layout": asdict(candidate.layout),
        "describe": candidate.layout.describe(),
        "gpus": candidate.gpus,
        "tokens_per_s": p.tokens_per_s,
        "tokens_per_s_per_gpu": candidate.tokens_per_s_per_gpu,
        "gap_to_best": 1.0 - p.tokens_per_s / best_tokens_per_s,
        "twin": {"cycle_s": candidate.scored.cycle_s, "bottleneck_s": candidate.scored.bottleneck_s,
                 **asdict(candidate.twin)},
        "events": _prediction_dict(candidate.events),
        "ties": candidate.ties,
        "components": list(candidate.components),
        "unvalidated": list(candidate.unvalidated),
        "band": candidate.band.to_dict() if candidate.band is not None else None,
        "band_note": candidate.band_note,
        "plan": candidate.plan.to_dict(),
    }


def search_result_to_dict(result: SearchResult) -> dict[str, Any]:
    best = result.best.prediction.tokens_per_s
    return {
        "schema_version": SEARCH_SCHEMA_VERSION,
        "experiment": result.experiment,
        "model": result.model,
        "cluster": result.cluster,
        "phase": result.phase,
        "tokens_per_iteration": result.tokens_per_iteration,
        "regime": result.regime,
        "options": asdict(result.options),
        "parameters": result.parameters,
        "space_size": result.space_size,
        "states_visited": result.states_visited,
        "band": result.band.to_dict() if result.band is not None else None,
        "resolution": result.resolution,
        "ranked": [candidate_to_dict(c, best) for c in result.ranked],
        "over_limits": [candidate_to_dict(c, best) for c in result.over_limits],
    }  # result.wall_s differs from run to run: the writer puts it in the output's metadata block
