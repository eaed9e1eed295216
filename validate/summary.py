"""Error statistics over outcomes, by regime and variant, and the regime bands a fitted profile carries."""

from __future__ import annotations

from dataclasses import dataclass

from topology.accuracy import COMPONENTS, REGIMES, RegimeError, coverage_bound, plan_tp_sizes, shape_features
from validate.crossval import Outcome

VARIANTS = ("held_out", "uncalibrated", "datasheet")
VARIANT_LABELS = {
    "held_out": "calibrated + fitted, held-out",
    "uncalibrated": "calibration profile, no fit",
    "datasheet": "datasheet only, no profile",
    "final": "fitted on all (training error, not accuracy)",
}
GOAL_MAPE = 0.10  # held-out decode-graph MAPE
GOAL_AIM_MAPE = 0.05
GOAL_MAX_APE = 0.25
GOAL_EXPERIMENTS = 20
GOAL_PREFILL_MAPE = 0.08  # held-out prefill MAPE, and below the unfitted one (issue 14)


@dataclass(frozen=True)
class ErrorSummary:
    variant: str
    regime: str
    count: int
    configurations: int
    mape: float  # mean |predicted - measured| / measured
    max_ape: float
    worst_key: str
    leases: int  # distinct machine leases the runs came from


def of_regime(outcomes: tuple[Outcome, ...], regime: str) -> tuple[Outcome, ...]:
    return tuple(o for o in outcomes if o.measurement.regime == regime)


def summarize(outcomes: tuple[Outcome, ...], variant: str, regime: str) -> ErrorSummary | None:
    chosen = of_regime(outcomes, regime)
    if not chosen:
        return None
    errors = [(abs(o.relative_error(variant)), o.measurement.key) for o in chosen]
    worst = max(errors)
    return ErrorSummary(
        variant=variant,
        regime=regime,
        count=len(chosen),
        configurations=len({o.measurement.config_key for o in chosen}),
        mape=sum(e for e, _ in errors) / len(errors),
        max_ape=worst[0],
        worst_key=worst[1],
        leases=len({o.measurement.lease for o in chosen}),
    )


def regimes(outcomes: tuple[Outcome, ...]) -> list[str]:
    """The regimes measured, in :data:`topology.accuracy.REGIMES` order."""
    present = {o.measurement.regime for o in outcomes}
    return [r for r in REGIMES if r in present]


def _band(runs: tuple[Outcome, ...], regime: str, source: str, family: str = "") -> RegimeError:
    s = summarize(runs, "held_out", regime)
    assert s is not None
    exercised = {c for o in runs for c in o.measurement.components}
    shapes = tuple(dict.fromkeys(shape_features(o.measurement.experiment.model) for o in runs)) if family else ()
    return RegimeError(
        regime=regime, gpu=runs[0].measurement.device_name, runs=s.count, configurations=s.configurations,
        mape=s.mape, worst=s.max_ape, components=tuple(c for c in COMPONENTS if c in exercised), hosts=s.leases,
        source=source, bound=coverage_bound([o.relative_error("held_out") for o in runs]), family=family,
        shapes=shapes, tp_sizes=tuple(sorted({n for o in runs for n in plan_tp_sizes(o.measurement.plan)})))


def regime_errors(outcomes: tuple[Outcome, ...], source: str) -> tuple[RegimeError, ...]:
    """The held-out bands of the runs scored (``topology.accuracy``): per regime, one for its one-GPU
    runs, one for its multi-GPU runs (with the parts and all-reduce group sizes they exercised), and
    one per shape family among its one-GPU runs."""
    bands = []
    for regime in regimes(outcomes):
        runs = of_regime(outcomes, regime)
        alone = tuple(o for o in runs if o.measurement.components == ("kernels",))
        talking = tuple(o for o in runs if o.measurement.components != ("kernels",))
        bands += [_band(group, regime, source) for group in (alone, talking) if group]
        for family in dict.fromkeys(o.measurement.family for o in alone if o.measurement.family):
            bands.append(_band(tuple(o for o in alone if o.measurement.family == family), regime, source,
                               family or ""))
    return tuple(bands)


def _kind(band: RegimeError) -> tuple[str, str, bool]:
    return band.regime, band.family, set(band.components) != {"kernels"}


def merge_bands(kept: tuple[RegimeError, ...], new: tuple[RegimeError, ...]) -> tuple[RegimeError, ...]:
    """The calibration profile's bands that this validation did not score again, then the new ones: a
    validation of communication on top of a validated kernel model keeps the kernel bands."""
    scored = {_kind(b) for b in new}
    return tuple(b for b in kept if _kind(b) not in scored) + new
