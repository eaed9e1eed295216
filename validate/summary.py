"""Error statistics over outcomes: mean and max absolute percentage error, by phase and variant."""

from __future__ import annotations

from dataclasses import dataclass

from validate.crossval import Outcome

VARIANTS = ("held_out", "uncalibrated", "datasheet")
VARIANT_LABELS = {
    "held_out": "calibrated + fitted, held-out",
    "uncalibrated": "calibration profile, no fit",
    "datasheet": "datasheet only, no profile",
    "final": "fitted on all (training error, not accuracy)",
}
GOAL_MAPE = 0.10
GOAL_AIM_MAPE = 0.05
GOAL_MAX_APE = 0.25
GOAL_EXPERIMENTS = 20


@dataclass(frozen=True)
class ErrorSummary:
    variant: str
    phase: str
    count: int
    mape: float  # mean |predicted - measured| / measured
    max_ape: float
    worst_key: str


def summarize(outcomes: tuple[Outcome, ...], variant: str, phase: str) -> ErrorSummary | None:
    chosen = [o for o in outcomes if o.measurement.phase == phase]
    if not chosen:
        return None
    errors = [(abs(o.relative_error(variant)), o.measurement.key) for o in chosen]
    worst = max(errors)
    return ErrorSummary(
        variant=variant,
        phase=phase,
        count=len(chosen),
        mape=sum(e for e, _ in errors) / len(errors),
        max_ape=worst[0],
        worst_key=worst[1],
    )


def phases(outcomes: tuple[Outcome, ...]) -> list[str]:
    return sorted({o.measurement.phase for o in outcomes})
