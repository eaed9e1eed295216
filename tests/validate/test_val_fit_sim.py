"""The fit recovers known simulator parameters from "measurements" the simulator itself made."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.resolve import resolve_given
from sim.simulate import simulate
from topology.experiment import build_plan, load_experiment
from topology.profile import HardwareProfile, ProfileParams
from topology.results import RunResult, write_result
from validate.fit import fit_params
from validate.measured import load_measurements, with_iterations
from validate.prediction import PredictionMemo
from validate.resimulate import MEASURED_ITERS, WARMUP_ITERS, measurement_predictor, param_specs

TRUTH = {"hbm_efficiency": 0.8, "launch_overhead_graph_s": 3e-6}
SETUPS = (  # overrides of small-h100x1: batch, microbatches, context, model
    ["workload.batch_size=64"],
    ["workload.batch_size=64", "plan.microbatches=4"],
    ["workload.batch_size=16", "workload.context_len=1024"],
    ["workload.batch_size=32", "plan.microbatches=2", "workload.context_len=512"],
    ["model=llama3-8b", "workload.batch_size=16", "workload.context_len=256"],
    ["model=llama3-8b", "workload.batch_size=16", "plan.microbatches=2"],
)


def _write_synthetic(folder: Path) -> None:
    truth = HardwareProfile(gpu_name="H100-SXM5-80GB", gpu_count=1, params=ProfileParams(sim_params=dict(TRUTH)))
    for i, overrides in enumerate(SETUPS):
        experiment = load_experiment("small-h100x1", [*overrides, f"name=synthetic-{i}"])
        plan = build_plan(experiment, "plan")
        short = with_iterations(experiment, WARMUP_ITERS, MEASURED_ITERS)
        simulated = simulate(resolve_given(short, plan, truth))
        measured = RunResult(source="hardware", experiment=experiment.to_dict(), plan_name="plan",
                             plan=plan.to_dict(), metrics=simulated.metrics, environment={"synthetic": True})
        write_result(folder / f"synthetic-{i}.json", measured)


def test_fit_recovers_known_sim_params(tmp_path: Path) -> None:
    _write_synthetic(tmp_path)
    measurements = load_measurements([str(tmp_path)])
    assert len(measurements) == len(SETUPS)
    specs = param_specs(tuple(TRUTH), measurements, None)
    starts = {s.name: s.start for s in specs}
    assert starts["hbm_efficiency"] != pytest.approx(TRUTH["hbm_efficiency"], rel=0.05)
    assert starts["launch_overhead_graph_s"] != pytest.approx(TRUTH["launch_overhead_graph_s"], rel=0.05)
    memo = PredictionMemo(measurement_predictor(), None, measurements[0].gpu_name)
    fit = fit_params(memo, measurements, specs)
    assert fit.values["hbm_efficiency"] == pytest.approx(TRUTH["hbm_efficiency"], rel=0.01)
    assert fit.values["launch_overhead_graph_s"] == pytest.approx(TRUTH["launch_overhead_graph_s"], rel=0.01)
    assert fit.training_mape < 1e-3
