"""Fitting and held-out scoring against a closed-form stand-in for the simulator."""

from __future__ import annotations

import numpy as np
import pytest
from val_stand_in import STAND_IN_START, stand_in_predictor

from topology.profile import HardwareProfile, ProfileParams
from validate.crossval import validate_measurements
from validate.fit import ParamSpec, fit_params, param_spec
from validate.folds import split_folds
from validate.measured import Measurement
from validate.prediction import PredictionMemo, with_sim_params, without_sim_params

SPECS = tuple(param_spec(name, start) for name, start in STAND_IN_START.items())


def test_fit_recovers_known_parameters(stand_in_measurements: list[Measurement]) -> None:
    memo = PredictionMemo(stand_in_predictor, None, stand_in_measurements[0].gpu_name)
    fit = fit_params(memo, stand_in_measurements, SPECS)
    assert fit.values["hbm_efficiency"] == pytest.approx(0.8, rel=1e-3)
    assert fit.values["launch_overhead_graph_s"] == pytest.approx(3e-6, rel=1e-3)
    assert fit.training_mape < 1e-4
    assert fit.unconstrained == ()


def test_unconstrained_parameter_is_reported_and_left_at_start(stand_in_measurements: list[Measurement]) -> None:
    memo = PredictionMemo(stand_in_predictor, None, stand_in_measurements[0].gpu_name)
    specs = (*SPECS, param_spec("collective_latency_s", 2e-6))  # the stand-in never reads it
    fit = fit_params(memo, stand_in_measurements, specs)
    assert fit.unconstrained == ("collective_latency_s",)
    assert fit.values["collective_latency_s"] == 2e-6


def test_held_out_error_and_variants(stand_in_measurements: list[Measurement]) -> None:
    n = len(stand_in_measurements)
    folds = split_folds(n, 4, np.random.default_rng(0))
    validation = validate_measurements(stand_in_measurements, stand_in_predictor, None, SPECS, folds)
    assert len(validation.outcomes) == n
    for outcome in validation.outcomes:
        fold = validation.folds[outcome.fold]
        index = stand_in_measurements.index(outcome.measurement)
        assert index in fold.held_out and index not in fold.train
        assert abs(outcome.relative_error("held_out")) < 1e-3
    # without a fit the stand-in starts from 0.9 / 5 us, so the uncalibrated error is large
    assert max(abs(o.relative_error("uncalibrated")) for o in validation.outcomes) > 0.05
    assert validation.final_fit.values["hbm_efficiency"] == pytest.approx(0.8, rel=1e-3)


def test_efficiency_bounds_and_profile_merge() -> None:
    spec = param_spec("hbm_efficiency", 1.0)
    assert (spec.lower, spec.upper) == (0.05, 1.0)
    latency = param_spec("p2p_latency_s", 4e-6)
    assert latency.lower == pytest.approx(4e-7) and latency.upper == pytest.approx(4e-5)
    with pytest.raises(ValueError):
        ParamSpec("x", 0.0, 0.0, 1.0)
    base = HardwareProfile(gpu_name="g", gpu_count=1, params=ProfileParams(hbm_bw_bytes_per_s=3e12,
                                                                          sim_params={"hbm_efficiency": 0.7}))
    stripped = without_sim_params(base)
    assert stripped is not None and stripped.params.sim_params == {}
    assert stripped.params.hbm_bw_bytes_per_s == 3e12
    merged = with_sim_params(stripped, {"compute_efficiency": 0.6}, "g")
    assert merged.params.sim_params == {"compute_efficiency": 0.6}
    assert with_sim_params(None, {"a": 1.0}, "g").gpu_name == "g"
