"""Fit named simulator parameters to measured step times (scipy.optimize.least_squares).

Residuals are relative errors of the step time, ``(simulated - measured) / measured``, one
per training experiment. Each parameter is fitted as a multiple of its starting value (so
an efficiency near 0.8 and a launch overhead near 3e-6 s are on one scale), inside bounds,
from a deterministic start: the value the simulator would use without a fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from topology.errors import LayerwiseError
from validate.measured import Measurement
from validate.prediction import PredictionMemo

EFFICIENCY_SUFFIX = "_efficiency"
EFFICIENCY_BOUNDS = (0.05, 1.0)  # a fraction of a peak rate
RELATIVE_BOUNDS = (0.1, 10.0)  # other parameters: within a factor of ten of their start
DIFF_STEP = 1e-3  # relative finite-difference step: the simulator is deterministic but piecewise
MAX_EVALUATIONS = 40  # residual evaluations per fit (each simulates every training experiment)
SENSITIVITY_FLOOR = 1e-6  # |d residual / d log value| below this: the data does not constrain it


@dataclass(frozen=True)
class ParamSpec:
    """One fitted parameter: its start (the unfitted value) and its bounds, in SI units."""

    name: str
    start: float
    lower: float
    upper: float

    def __post_init__(self) -> None:
        if not self.lower <= self.start <= self.upper or not self.lower < self.upper:
            raise LayerwiseError(
                f"--params {self.name}", f"start {self.start:g} outside bounds [{self.lower:g}, {self.upper:g}]"
            )
        if self.start <= 0:
            raise LayerwiseError(f"--params {self.name}", f"start must be > 0 to fit it, got {self.start:g}")

    def bound_reached(self, value: float) -> str | None:
        """``"lower"`` or ``"upper"`` when ``value`` sits on that bound (within 0.1%): the fit wanted to
        go further, so the parameter stands in for something the model lacks."""
        if value <= self.lower * 1.001:
            return "lower"
        if value >= self.upper * 0.999:
            return "upper"
        return None


def param_spec(name: str, start: float) -> ParamSpec:
    """Bounds for a parameter by what it is: an efficiency in (0, 1], anything else within 10x."""
    if name.endswith(EFFICIENCY_SUFFIX):
        lower, upper = EFFICIENCY_BOUNDS
        return ParamSpec(name=name, start=min(max(start, lower), upper), lower=lower, upper=upper)
    return ParamSpec(name=name, start=start, lower=start * RELATIVE_BOUNDS[0], upper=start * RELATIVE_BOUNDS[1])


@dataclass(frozen=True)
class FitResult:
    values: dict[str, float]  # fitted parameter values, SI units
    unconstrained: tuple[str, ...]  # parameters the training data did not move (left at start)
    training_mape: float  # on the training experiments only; never reported as accuracy
    evaluations: int
    converged: bool
    message: str


def relative_errors(memo: PredictionMemo, measurements: list[Measurement], sim_params: dict[str, float]) -> np.ndarray:
    """(simulated - measured) / measured step time, one per measurement."""
    return np.array(
        [
            (memo.predict(m, sim_params).step_time_s - m.measured_step_time_s) / m.measured_step_time_s
            for m in measurements
        ]
    )


def _values(specs: tuple[ParamSpec, ...], multiples: np.ndarray) -> dict[str, float]:
    # rounded so that the memo sees the same point when two folds evaluate it
    return {s.name: float(f"{s.start * float(x):.9g}") for s, x in zip(specs, multiples, strict=True)}


def fit_params(memo: PredictionMemo, measurements: list[Measurement], specs: tuple[ParamSpec, ...],
               fixed: dict[str, float] | None = None) -> FitResult:
    """Least-squares fit of ``specs`` to ``measurements`` (the training split only), with the
    parameters in ``fixed`` held at their values (they are not in the result)."""
    held = dict(fixed or {})
    if not specs:
        errors = relative_errors(memo, measurements, held)
        return FitResult({}, (), float(np.mean(np.abs(errors))), 0, True, "no parameters to fit")
    lower = np.array([s.lower / s.start for s in specs])
    upper = np.array([s.upper / s.start for s in specs])
    start = np.ones(len(specs))

    def residuals(multiples: np.ndarray) -> np.ndarray:
        return relative_errors(memo, measurements, {**held, **_values(specs, multiples)})

    solution = least_squares(
        residuals, start, bounds=(lower, upper), method="trf", diff_step=DIFF_STEP, max_nfev=MAX_EVALUATIONS,
    )
    # a column of the Jacobian near zero: that parameter does not change any training step time
    sensitivity = np.abs(solution.jac).max(axis=0) if solution.jac.size else np.zeros(len(specs))
    unconstrained = tuple(s.name for s, g in zip(specs, sensitivity, strict=True) if g < SENSITIVITY_FLOOR)
    multiples = np.where(sensitivity < SENSITIVITY_FLOOR, 1.0, solution.x)
    values = _values(specs, multiples)
    errors = relative_errors(memo, measurements, {**held, **values})
    return FitResult(
        values=values,
        unconstrained=unconstrained,
        training_mape=float(np.mean(np.abs(errors))),
        evaluations=int(solution.nfev),
        converged=bool(solution.status > 0),
        message=str(solution.message),
    )
