"""The report's section on whether the bands cover: each held-out run against the band the other folds
gave it (:mod:`validate.coverage`), per regime, per family or plan kind, and the runs with no band."""

from __future__ import annotations

import statistics

from topology.accuracy import COVERAGE
from validate.coverage import Coverage
from validate.crossval import Outcome
from validate.report import plots
from validate.report.document import Block, Bullets, Figure, Heading, Paragraph, Table
from validate.summary import regimes


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _row(name: str, coverage: Coverage) -> tuple[str, ...]:
    banded = coverage.banded
    errors = [abs(c.error) for c in banded]
    fraction = coverage.fraction_covered
    return (name, str(len(coverage.checks)), str(len(banded)),
            _pct(fraction) if fraction is not None else "-",
            _pct(statistics.mean(errors)) if errors else "-", _pct(max(errors)) if errors else "-",
            str(len(coverage.unbanded)))


def coverage_section(outcomes: tuple[Outcome, ...], coverage: Coverage) -> list[Block]:
    rows = []
    for regime in regimes(outcomes):
        mine = coverage.of_regime(regime)
        rows.append(_row(f"**{regime}**", mine))
        for name in sorted({c.family or c.plan_kind for c in mine.checks}):
            rows.append(_row(f"{regime}, {name}",
                             Coverage(tuple(c for c in mine.checks if (c.family or c.plan_kind) == name))))
    fraction = coverage.fraction_covered
    verdict = ("no held-out run carried a band" if fraction is None else
               f"{_pct(fraction)} of the {len(coverage.banded)} held-out runs that carried a band fell inside it "
               f"(promise: at least {_pct(COVERAGE)}): " + ("**kept**" if coverage.promise_kept else "**broken**"))
    unbanded = [f"`{c.key}`: error {_pct(c.error)}; {c.band_from}" for c in coverage.unbanded]
    measured = {o.measurement.key: o.measured_step_time_s for o in outcomes}
    return [
        Heading(2, "Do the bands cover?"),
        Paragraph("Each held-out run is looked up as a user's prediction would be (`topology.accuracy.band_for`), "
                  "with the bands that the *other* folds earned: the nearest measured family's band for a one-GPU "
                  "shape, the multi-GPU runs' band for a plan that communicates, none where the shape is outside "
                  "the measured ones or the plan uses a part no other fold exercised. MAPE and worst here are "
                  f"over the runs that carried a band. Verdict: {verdict}."),
        Table(("runs", "held out", "with a band", "inside their band", "MAPE (banded)", "worst (banded)",
               "no band"), tuple(rows)),
        Figure("bands.png", plots.bands_png(coverage.checks, measured),
               "Held-out prediction against measurement, per family or plan kind, with the band each carried."),
        Heading(3, "Runs with no band promised"),
        Bullets(tuple(unbanded) if unbanded else ("none",)),
    ]
