"""Do the bands cover? Each held-out run is looked up as a user's prediction would be, with the bands
that the *other* folds earned (nested: the run's own fold never widens or narrows its band), and
scored inside, outside, or "outside measured shapes" (no band promised).

This is the check behind "a band is a promise": at least :data:`topology.accuracy.COVERAGE` of the
held-out errors that carried a band must fall inside it. Runs the lookup calls outside measured shapes
carry no promise; they are counted and listed, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from topology.accuracy import COVERAGE, RegimeError, band_for, plan_tp_sizes, unvalidated_components
from validate.crossval import Outcome
from validate.summary import regime_errors


@dataclass(frozen=True)
class BandCheck:
    """One held-out run against the band its prediction would have carried."""

    key: str
    regime: str
    family: str  # the run's shape family ("" when none)
    plan_kind: str  # "TP1", "TP4", "PP4", "TP2xPP2", ...
    error: float  # held-out (predicted - measured) / measured
    half_width: float | None  # the band's half width; None: no band (outside measured shapes, or none earned)
    band_from: str  # which band: "family gqa", "multi-GPU runs", "regime", or the note why there is none

    @property
    def covered(self) -> bool | None:
        """Inside its band; None when it carried none."""
        return None if self.half_width is None else abs(self.error) <= self.half_width + 1e-12


@dataclass(frozen=True)
class Coverage:
    checks: tuple[BandCheck, ...]

    @property
    def banded(self) -> tuple[BandCheck, ...]:
        return tuple(c for c in self.checks if c.half_width is not None)

    @property
    def unbanded(self) -> tuple[BandCheck, ...]:
        return tuple(c for c in self.checks if c.half_width is None)

    @property
    def fraction_covered(self) -> float | None:
        banded = self.banded
        return sum(1 for c in banded if c.covered) / len(banded) if banded else None

    @property
    def promise_kept(self) -> bool | None:
        fraction = self.fraction_covered
        return None if fraction is None else fraction >= COVERAGE

    def of_regime(self, regime: str) -> Coverage:
        return Coverage(tuple(c for c in self.checks if c.regime == regime))


def plan_kind(outcome: Outcome) -> str:
    """A plan's layout in words: ``TP4``, ``PP4``, ``TP2xPP2``, ``TP1`` for one GPU."""
    plan = outcome.measurement.plan
    tp = max(stage.tp_degree for stage in plan.stages)
    if plan.num_stages == 1:
        return f"TP{tp}"
    return f"TP{tp}xPP{plan.num_stages}" if tp > 1 else f"PP{plan.num_stages}"


def _check(outcome: Outcome, bands: tuple[RegimeError, ...]) -> BandCheck:
    m = outcome.measurement
    lookup = band_for(bands, m.regime, m.experiment.model, m.components)
    band = lookup.band
    if band is not None and unvalidated_components(m.components, band, plan_tp_sizes(m.plan)):
        band = None  # a part no other fold exercised: the prediction would have said unvalidated
        note = "a part no other fold exercised"
    else:
        note = lookup.note or "no band earned by the other folds"
    if band is None:
        return BandCheck(m.key, m.regime, m.family or "", plan_kind(outcome), outcome.relative_error("held_out"),
                         None, note)
    where = (f"family {band.family}" if band.family
             else "multi-GPU runs" if set(band.components) != {"kernels"} else "regime")
    return BandCheck(m.key, m.regime, m.family or "", plan_kind(outcome), outcome.relative_error("held_out"),
                     band.half_width, where)


def nested_coverage(outcomes: tuple[Outcome, ...]) -> Coverage:
    """Every held-out run against the band the other folds' held-out errors give it (see the module
    docstring)."""
    checks = []
    for fold in sorted({o.fold for o in outcomes}):
        others = tuple(o for o in outcomes if o.fold != fold)
        bands = regime_errors(others, "nested") if others else ()
        checks += [_check(o, bands) for o in outcomes if o.fold == fold]
    return Coverage(tuple(sorted(checks, key=lambda c: (c.regime, c.key))))
