"""Error by regime: each regime fits its own parameters on its own runs, scores apart, and
carries its own band; rank agreement counts each kind of comparison apart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from val_stand_in import STAND_IN_START, stand_in_predictor

from topology.experiment import build_plan, load_experiment
from topology.profile import HardwareProfile, ProfileParams
from topology.results import HardwareDetails
from validate.crossval import Outcome
from validate.extrapolation import ExtrapolatedPrediction
from validate.fit import fit_params, param_spec
from validate.measured import Measurement
from validate.prediction import Prediction, PredictionMemo
from validate.ranking import LAYOUT, MICROBATCHES, comparison_kind, describe_agreement, rank_groups
from validate.regimes import default_params, fit_by_regime, measured_by_profile, param_budget, regime_of_param
from validate.report.breakdown import breakdown_table
from validate.report.extrapolation import prediction_band
from validate.summary import regime_errors, summarize

SPECS = tuple(param_spec(name, start) for name, start in STAND_IN_START.items())
TRUTH = {"hbm_efficiency": 0.8, "launch_overhead_graph_s": 3e-6}


def _as_eager(m: Measurement, slowdown: float, folder: str) -> Measurement:
    """The same run measured in eager mode on a host that made it ``slowdown`` times slower."""
    hardware = HardwareDetails(backend="nccl", cuda_graphs=False, dtype="bfloat16", kv_fill="seeded",
                               kv_capacity_tokens=0, sdpa_backend="auto", communication_timing="eager")
    metrics = dataclasses.replace(m.result.metrics, step_time_s=m.measured_step_time_s * slowdown, hardware=hardware)
    result = dataclasses.replace(m.result, metrics=metrics)
    workload = dataclasses.replace(m.experiment.workload, cuda_graphs=False)  # as load_measurements rebuilds it
    experiment = dataclasses.replace(m.experiment, workload=workload)
    return dataclasses.replace(m, key=m.key + "-eager", path=f"/data/{folder}/{Path(m.path).name}", result=result,
                               experiment=experiment)


def _outcomes(measurements: list[Measurement], predicted_s: list[float]) -> tuple[Outcome, ...]:
    out = []
    for m, p in zip(measurements, predicted_s, strict=True):
        prediction = Prediction(step_time_s=p, tokens_per_s=1.0 / p, breakdown_s={"kv_cache": p, "bubble": 1e-9})
        out.append(Outcome(m, 0, prediction, prediction, prediction, prediction))
    return tuple(out)


def test_eager_runs_do_not_move_the_device_parameters(stand_in_measurements: list[Measurement]) -> None:
    """Host-bound eager runs 1.5x slower than their graph twins: one fit of everything would
    bend the device parameters toward them; the regime fit leaves them where the graph runs say."""
    eager = [_as_eager(m, 1.5, "lease-b") for m in stand_in_measurements]
    assert {m.regime for m in stand_in_measurements} == {"decode-graph"} and eager[0].regime == "decode-eager"
    memo = PredictionMemo(stand_in_predictor, None, stand_in_measurements[0].gpu_name)
    everything = [*stand_in_measurements, *eager]
    by_regime = fit_by_regime(memo, everything, SPECS)
    assert by_regime.values["hbm_efficiency"] == pytest.approx(TRUTH["hbm_efficiency"], rel=1e-3)
    assert by_regime.values["launch_overhead_graph_s"] == pytest.approx(TRUTH["launch_overhead_graph_s"], rel=1e-3)
    pooled = fit_params(memo, everything, SPECS)
    assert pooled.values["hbm_efficiency"] < 0.95 * TRUTH["hbm_efficiency"]  # what the split prevents


def test_a_regime_without_training_runs_keeps_its_parameters_at_start(
        stand_in_measurements: list[Measurement]) -> None:
    memo = PredictionMemo(stand_in_predictor, None, stand_in_measurements[0].gpu_name)
    specs = (*SPECS, param_spec("launch_overhead_eager_s", 9e-6), param_spec("prefill_gemm_time_scale", 1.0))
    fit = fit_by_regime(memo, stand_in_measurements, specs)
    assert fit.values["launch_overhead_eager_s"] == 9e-6 and fit.values["prefill_gemm_time_scale"] == 1.0
    assert set(fit.unconstrained) == {"launch_overhead_eager_s", "prefill_gemm_time_scale"}


def test_default_parameters_per_regime_within_budget(stand_in_measurements: list[Measurement]) -> None:
    eager = [_as_eager(m, 1.2, "lease-a") for m in stand_in_measurements[:5]]
    runs = [*stand_in_measurements, *eager]  # 12 graph configurations, 5 eager ones
    assert param_budget(runs, "decode-graph") == 4 and param_budget(runs, "decode-eager") == 1
    assert param_budget(runs, "prefill") == 0
    everything = lambda names, _runs: names  # noqa: E731  (every candidate moves something)
    chosen = default_params(runs, None, everything)
    assert chosen == ("norm_latency_s", "elementwise_latency_s", "kv_write_latency_s", "launch_overhead_graph_s",
                      "launch_overhead_eager_s")
    assert {regime_of_param(n) for n in chosen} == {"decode-graph", "decode-eager"}
    measured = HardwareProfile(gpu_name="g", gpu_count=1, params=ProfileParams(hbm_bw_bytes_per_s=3e12,
                                                                               matmul_flops_per_s=8e14))
    assert measured_by_profile(measured) == ("hbm_efficiency", "compute_efficiency")
    assert default_params(runs, measured, everything)[:4] == ("norm_latency_s", "elementwise_latency_s",
                                                              "kv_write_latency_s", "launch_overhead_graph_s")
    timed = HardwareProfile(gpu_name="g", gpu_count=1, params=ProfileParams(launch_overhead_graph_s=1e-6))
    assert "launch_overhead_graph_s" not in default_params(runs, timed, everything)  # measured: not fitted


def test_bands_by_regime_with_leases_and_components(stand_in_measurements: list[Measurement]) -> None:
    graph = stand_in_measurements[:4]
    eager = [_as_eager(m, 1.0, "lease-a") for m in graph[:2]] + [_as_eager(m, 1.0, "lease-b") for m in graph[2:]]
    runs = [*graph, *eager]
    predicted = [m.measured_step_time_s * f for m, f in zip(runs, (1.1, 0.9, 1.0, 1.0, 1.3, 1.0, 1.0, 1.0),
                                                             strict=True)]
    outcomes = _outcomes(runs, predicted)
    bands = {b.regime: b for b in regime_errors(outcomes, "r/report.md")}
    assert set(bands) == {"decode-graph", "decode-eager"}
    assert bands["decode-graph"].mape == pytest.approx(0.05) and bands["decode-graph"].worst == pytest.approx(0.1)
    assert bands["decode-eager"].mape == pytest.approx(0.075) and bands["decode-eager"].hosts == 2
    assert bands["decode-graph"].components == ("kernels",) and bands["decode-graph"].source == "r/report.md"
    eager_summary = summarize(outcomes, "held_out", "decode-eager")
    assert eager_summary is not None and eager_summary.leases == 2 and eager_summary.count == 4


def test_lease_comes_from_the_environment_else_the_result_folder(stand_in_measurements: list[Measurement]) -> None:
    m = stand_in_measurements[0]
    assert m.lease == Path(m.path).parent.name
    recorded = dataclasses.replace(m.result, environment={"boot_id": "4f1c"})
    assert dataclasses.replace(m, result=recorded).lease == "4f1c"


def test_comparison_kinds() -> None:
    experiment = load_experiment("seed-layer-h200x4")
    plans = {name: build_plan(experiment, name) for name in experiment.plan_names}
    assert comparison_kind([plans["layer-wise-mb1"], plans["layer-wise-mb4"]]) == MICROBATCHES
    assert comparison_kind([plans["tp4"], plans["tp2pp2"]]) == LAYOUT
    assert comparison_kind([plans["tp4"], plans["layer-wise-mb4"], plans["layer-wise-mb8"]]) == LAYOUT


def test_rank_agreement_says_which_kind_was_never_measured(stand_in_measurements: list[Measurement]) -> None:
    rankings = rank_groups(_outcomes(stand_in_measurements, [m.measured_step_time_s
                                                             for m in stand_in_measurements]), "held_out")
    assert rankings and {r.kind for r in rankings} == {MICROBATCHES}
    lines = describe_agreement(rankings)
    assert lines[0].startswith(f"{LAYOUT}: **none measured**")
    assert lines[1] == f"{MICROBATCHES}: {len(rankings)} of {len(rankings)} groups agree on the best plan, " \
                       f"{len(rankings)} of {len(rankings)} on the whole order"


def test_breakdown_table_leaves_out_causes_that_are_zero_everywhere(stand_in_measurements: list[Measurement]) -> None:
    table, zero = breakdown_table(_outcomes(stand_in_measurements[:2], [1e-3, 2e-3]))
    assert table.header == ("experiment", "sim kv_cache", "measured per stage (ms)")
    assert zero == ["bubble"]  # 1e-9 s shows as 0.000 ms
    assert [row[1] for row in table.rows] == ["1.000", "2.000"]


def _seed_prediction(gpu_name: str, components: tuple[str, ...]) -> ExtrapolatedPrediction:
    return ExtrapolatedPrediction(experiment_name="seed-16xh100", cluster_name="seed-16xh100", plan_name="baseline",
                                  plan_description="tp-pp TP8xPP2 mb=8", devices=16, tokens_per_s=9000.0,
                                  step_time_s=0.014, breakdown_s={}, uncalibrated_tokens_per_s=9100.0,
                                  claimed_tokens_per_s=12800.0, regime="decode-graph", components=components,
                                  gpu_name=gpu_name, profile_note="")


def test_a_prediction_carries_its_own_regime_band_and_names_what_no_run_measured(
        stand_in_measurements: list[Measurement]) -> None:
    outcomes = _outcomes(stand_in_measurements[:2], [m.measured_step_time_s * 1.02 for m in stand_in_measurements[:2]])
    bands = regime_errors(outcomes, "")
    parts = ("kernels", "allreduce", "p2p", "cross-node")
    same_gpu, mape = prediction_band(_seed_prediction("H100-SXM5-80GB", parts), bands, "H100-SXM5-80GB")
    assert same_gpu == ("±2.0% (90% of held-out decode-graph errors on H100-SXM5-80GB, 2 runs, MAPE 2.0%, worst "
                        "2.0%); unvalidated: all-reduce, point-to-point, cross-node links")
    assert mape == pytest.approx(0.02)
    other_gpu, none = prediction_band(_seed_prediction("H100-SXM5-80GB", parts), bands, "H200-SXM-141GB")
    assert other_gpu == ("no band for H100-SXM5-80GB (runs measured on H200-SXM-141GB); unvalidated: kernels, "
                         "all-reduce, point-to-point, cross-node links")
    assert none == 0.0
    prefill_only = tuple(b for b in bands if b.regime == "prefill")  # a decode prediction never borrows it
    text, _ = prediction_band(_seed_prediction("H100-SXM5-80GB", ("kernels",)), prefill_only, "H100-SXM5-80GB")
    assert text == "no validation band; unvalidated: kernels"


def test_the_gap_between_plans_is_explained_only_where_the_simulator_sees_one(
        stand_in_measurements: list[Measurement]) -> None:
    from validate.comparisons import explain_difference

    slow, fast = _outcomes(stand_in_measurements[:2], [2e-3, 1e-3])
    winner, loser = (slow, fast) if slow.measured_step_time_s < fast.measured_step_time_s else (fast, slow)
    text = explain_difference(winner, loser)
    assert "the largest difference is **kv_cache**" in text  # 1 ms of KV reads apart
    same = _outcomes(stand_in_measurements[:2], [1e-3, 1e-3 * (1 + 1e-9)])  # rounding apart: no cause
    text = explain_difference(*sorted(same, key=lambda o: o.measured_step_time_s))
    assert "predicts the same step for both" in text and "largest difference" not in text
