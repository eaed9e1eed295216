"""The nested band check (validate.coverage), on hand-worked errors."""

from __future__ import annotations

import dataclasses

import pytest

from validate.coverage import BandCheck, Coverage, nested_coverage
from validate.crossval import Outcome
from validate.measured import Measurement
from validate.prediction import Prediction


def _outcomes(measurements: list[Measurement], errors: list[float]) -> tuple[Outcome, ...]:
    """One fold per run, each predicted ``1 + error`` times its measured step time."""
    out = []
    for fold, (m, error) in enumerate(zip(measurements, errors, strict=True)):
        p = m.measured_step_time_s * (1 + error)
        prediction = Prediction(step_time_s=p, tokens_per_s=1.0 / p, breakdown_s={})
        out.append(Outcome(m, fold, prediction, prediction, prediction, prediction))
    return tuple(out)


def test_each_run_is_judged_by_the_band_the_other_folds_earned(stand_in_measurements: list[Measurement]) -> None:
    # ten runs, |errors| 1%..10%. Leaving out the 10% run, the other nine give the split-conformal bound
    # ceil(0.9 * 10) = 9th smallest of nine = 9%: the 10% run falls outside. Leaving out any other run,
    # the 9th smallest of the remaining nine is 10%: inside. 9 of 10 inside: the promise (90%) holds.
    runs = stand_in_measurements[:10]
    errors = [0.01 * (i + 1) * (-1 if i % 2 else 1) for i in range(10)]
    coverage = nested_coverage(_outcomes(runs, errors))
    by_key = {c.key: c for c in coverage.checks}
    assert by_key[runs[9].key].half_width == pytest.approx(0.09)
    assert by_key[runs[9].key].covered is False
    for m in runs[:9]:
        assert by_key[m.key].half_width == pytest.approx(0.10)
        assert by_key[m.key].covered is True
    assert coverage.fraction_covered == pytest.approx(0.9)
    assert coverage.promise_kept is True


def test_a_broken_promise_is_reported(stand_in_measurements: list[Measurement]) -> None:
    runs = stand_in_measurements[:5]
    errors = [0.01, 0.01, 0.01, 0.02, 0.40]
    # n = 4 others: rank ceil(0.9 * 5) = 5 > 4 -> the worst of the other four. The 0.40 run sees 2%:
    # outside; every other run sees 40%: inside. 4 of 5 = 80% < 90%: broken.
    coverage = nested_coverage(_outcomes(runs, errors))
    assert coverage.fraction_covered == pytest.approx(0.8)
    assert coverage.promise_kept is False


def test_runs_without_a_band_are_kept_apart() -> None:
    inside = BandCheck("a", "decode-graph", "gqa", "TP1", 0.03, 0.05, "family gqa")
    outside = BandCheck("b", "decode-graph", "gqa", "TP1", -0.07, 0.05, "family gqa")
    unbanded = BandCheck("c", "decode-graph", "mqa", "TP1", -0.50, None, "outside measured shapes")
    coverage = Coverage((inside, outside, unbanded))
    assert coverage.banded == (inside, outside) and coverage.unbanded == (unbanded,)
    assert coverage.fraction_covered == pytest.approx(0.5)
    assert unbanded.covered is None
    assert dataclasses.replace(outside, error=-0.05).covered is True  # the edge is inside
