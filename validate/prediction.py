"""What the validator asks of a simulator, and a memo so each (experiment, parameters) runs once.

A :data:`Predictor` maps a measurement and a profile (or ``None``: datasheet only) to a
:class:`Prediction`. The real one re-simulates with ``sim.simulate`` (:mod:`validate.resimulate`);
tests may pass any function of the same shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from topology.profile import HardwareProfile, ProfileParams
from topology.results import StageMetrics
from validate.measured import Measurement


@dataclass(frozen=True)
class Prediction:
    step_time_s: float
    tokens_per_s: float
    breakdown_s: dict[str, float] = field(default_factory=dict)  # simulated step time by cause
    stages: tuple[StageMetrics, ...] = ()
    trace_path: str | None = None


Predictor = Callable[[Measurement, HardwareProfile | None], Prediction]


def with_sim_params(profile: HardwareProfile | None, sim_params: dict[str, float], gpu_name: str) -> HardwareProfile:
    """``profile`` (or an empty profile for ``gpu_name``) with ``sim_params`` set over its own."""
    if profile is None:
        return HardwareProfile(gpu_name=gpu_name, gpu_count=1, params=ProfileParams(sim_params=dict(sim_params)),
                               source="validate-fit")
    merged = {**profile.params.sim_params, **sim_params}
    return dataclasses.replace(profile, params=dataclasses.replace(profile.params, sim_params=merged))


def without_sim_params(profile: HardwareProfile | None,
                       names: tuple[str, ...] | None = None) -> HardwareProfile | None:
    """The calibration profile without its previously fitted values of ``names`` (default: all of
    them, its measured numbers only): a validation refits those and keeps the rest as they are."""
    if profile is None or not profile.params.sim_params:
        return profile
    kept = {} if names is None else {k: v for k, v in profile.params.sim_params.items() if k not in names}
    return dataclasses.replace(profile, params=dataclasses.replace(profile.params, sim_params=kept))


class PredictionMemo:
    """Predictions for one base profile, memoised by (measurement, fitted parameter values).

    The fitter evaluates the same starting point in every fold; the memo makes that free.
    """

    def __init__(self, predictor: Predictor, base_profile: HardwareProfile | None, gpu_name: str) -> None:
        self._predictor = predictor
        self._base_profile = base_profile
        self._gpu_name = gpu_name
        self._memo: dict[tuple[str, tuple[tuple[str, float], ...]], Prediction] = {}

    @property
    def evaluations(self) -> int:
        """How many distinct simulations were run."""
        return len(self._memo)

    def profile_for(self, sim_params: dict[str, float]) -> HardwareProfile | None:
        if not sim_params:
            return self._base_profile
        return with_sim_params(self._base_profile, sim_params, self._gpu_name)

    def predict(self, measurement: Measurement, sim_params: dict[str, float]) -> Prediction:
        key = (measurement.key, tuple(sorted(sim_params.items())))
        if key not in self._memo:
            self._memo[key] = self._predictor(measurement, self.profile_for(sim_params))
        return self._memo[key]
