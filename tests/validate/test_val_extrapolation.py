"""Claims beside predictions: ratios worked by hand."""

from __future__ import annotations

from validate.extrapolation import ExtrapolatedPrediction
from validate.report.extrapolation import claim_ratios


def _prediction(experiment: str, plan: str, tokens_per_s: float, claimed: float | None) -> ExtrapolatedPrediction:
    return ExtrapolatedPrediction(experiment_name=experiment, cluster_name="c16", plan_name=plan,
                                  plan_description=plan, devices=16, tokens_per_s=tokens_per_s, step_time_s=1.0,
                                  breakdown_s={}, uncalibrated_tokens_per_s=tokens_per_s, claimed_tokens_per_s=claimed,
                                  regime="decode-graph", components=("kernels",), gpu_name="G", profile_note="")


def test_each_claimed_plan_is_set_against_the_plan_claimed_slowest() -> None:
    lines = claim_ratios((
        _prediction("paper", "layer-wise", 1000.0, 15360.0),  # claimed 1.20x the baseline
        _prediction("paper", "baseline", 8000.0, 12800.0),
        _prediction("paper", "unclaimed", 9000.0, None),  # no claim: left out
        _prediction("other", "only-one", 5.0, 1.0),  # one claimed plan: nothing to compare
    ))
    assert lines == ["`paper` on `c16`: layer-wise / baseline = 0.12x predicted against 1.20x claimed; "
                     "baseline wins in the simulator; see the error band column for what the prediction rests on"]


def test_no_claims_no_ratios() -> None:
    assert claim_ratios((_prediction("x", "a", 1.0, None), _prediction("x", "b", 2.0, None))) == []
