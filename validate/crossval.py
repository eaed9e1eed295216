"""Held-out error: fit on each fold's training experiments, predict only its held-out ones.

Each fold fits regime by regime (:func:`validate.regimes.fit_by_regime`).

Besides the held-out predictions this records, for the same experiments, the simulator
with the calibration profile and no fit ("uncalibrated") and with no profile at all
("datasheet"), so the value of calibrating and of fitting is visible; and the final fit on
all experiments, which is what ``fitted-profile.json`` holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from topology.profile import HardwareProfile
from validate.fit import FitResult, ParamSpec
from validate.folds import Fold
from validate.measured import Measurement
from validate.prediction import Prediction, PredictionMemo, Predictor
from validate.regimes import fit_by_regime


@dataclass(frozen=True)
class Outcome:
    """One measured experiment and what each variant of the simulator predicted for it."""

    measurement: Measurement
    fold: int
    held_out: Prediction  # the fit of the fold that did not see this experiment
    uncalibrated: Prediction  # calibration profile, no fit
    datasheet: Prediction  # no profile at all
    final: Prediction  # the final fit on all experiments (trained on this one: never "accuracy")

    @property
    def measured_step_time_s(self) -> float:
        return self.measurement.measured_step_time_s

    def relative_error(self, variant: str) -> float:
        predicted: Prediction = getattr(self, variant)
        return (predicted.step_time_s - self.measured_step_time_s) / self.measured_step_time_s


@dataclass(frozen=True)
class Validation:
    outcomes: tuple[Outcome, ...]
    folds: tuple[Fold, ...]
    fold_fits: tuple[FitResult, ...]
    final_fit: FitResult
    specs: tuple[ParamSpec, ...]
    simulations: int  # distinct simulator runs


def validate_measurements(
    measurements: list[Measurement],
    predictor: Predictor,
    profile: HardwareProfile | None,
    specs: tuple[ParamSpec, ...],
    folds: tuple[Fold, ...],
    progress: Callable[[str], None] = lambda _: None,
    fold_profiles: dict[int, HardwareProfile | None] | None = None,
) -> Validation:
    """``profile``: the calibration profile the fits start from (its values of the fitted parameters
    already dropped); ``fold_profiles``: a fold's own where it must differ (a fold that holds a shape
    family out also leaves that family's measured kernels out)."""
    gpu_name = measurements[0].gpu_name
    fitted = PredictionMemo(predictor, profile, gpu_name)
    datasheet = PredictionMemo(predictor, None, gpu_name)
    fold_of: dict[int, int] = {}
    held_out: dict[int, Prediction] = {}
    uncalibrated: dict[int, Prediction] = {}
    fold_fits = []
    for fold in folds:
        own = (fold_profiles or {}).get(fold.index, profile)
        memo = fitted if own is profile else PredictionMemo(predictor, own, gpu_name)
        train = [measurements[i] for i in fold.train]
        fit = fit_by_regime(memo, train, specs)
        fold_fits.append(fit)
        for i in fold.held_out:
            if i in held_out:
                raise AssertionError(f"experiment {i} is held out by two folds")
            fold_of[i] = fold.index
            held_out[i] = memo.predict(measurements[i], fit.values)
            uncalibrated[i] = memo.predict(measurements[i], {})
        scores = np.mean([abs(held_out[i].step_time_s / measurements[i].measured_step_time_s - 1.0)
                          for i in fold.held_out])
        progress(f"fold {fold.index + 1}/{len(folds)}: held-out MAPE {100 * scores:.1f}% "
                 f"({fit.evaluations} evaluations, {fitted.evaluations} simulations so far)")
    final_fit = fit_by_regime(fitted, measurements, specs)
    progress(f"final fit on all {len(measurements)} experiments: {final_fit.values}")
    outcomes = tuple(
        Outcome(
            measurement=m,
            fold=fold_of[i],
            held_out=held_out[i],
            uncalibrated=uncalibrated[i],
            datasheet=datasheet.predict(m, {}),
            final=fitted.predict(m, final_fit.values),
        )
        for i, m in enumerate(measurements)
    )
    return Validation(
        outcomes=outcomes,
        folds=folds,
        fold_fits=tuple(fold_fits),
        final_fit=final_fit,
        specs=specs,
        simulations=fitted.evaluations + datasheet.evaluations,  # folds with profiles of their own not counted
    )
