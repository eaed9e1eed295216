"""Helpers of the validate tests: hardware-like results on disk, and a stand-in predictor.

The stand-in is a closed-form step time (weights streamed from HBM plus a launch cost per
layer) of the parameters the fitter names, so the fitting and cross-validation logic can be
tested without the simulator; the simulator itself is exercised in test_fit_sim.py and
test_report.py.
"""

from __future__ import annotations

from pathlib import Path

from topology.experiment import build_plan, load_experiment
from topology.profile import HardwareProfile
from topology.results import Metrics, RunResult, write_result
from validate.measured import Measurement, load_measurements
from validate.prediction import Prediction

STAND_IN_START = {"hbm_efficiency": 0.9, "launch_overhead_graph_s": 5e-6}
KERNELS_PER_LAYER = 10


def stand_in_step_time_s(measurement: Measurement, sim_params: dict[str, float]) -> float:
    values = {**STAND_IN_START, **sim_params}
    plan = measurement.plan
    weights_bytes = sum(s.footprint.weights_bytes for s in plan.stages)
    gpu = measurement.experiment.cluster.gpu
    stream_s = weights_bytes / (gpu.hbm_bw_bytes_per_s * values["hbm_efficiency"])
    launches = plan.model.num_layers * KERNELS_PER_LAYER * plan.microbatches
    return stream_s * plan.microbatches ** 0.5 + launches * values["launch_overhead_graph_s"]


def stand_in_predictor(measurement: Measurement, profile: HardwareProfile | None) -> Prediction:
    sim_params = dict(profile.params.sim_params) if profile else {}
    step_s = stand_in_step_time_s(measurement, sim_params)
    return Prediction(step_time_s=step_s, tokens_per_s=measurement.experiment.workload.batch_size / step_s,
                      breakdown_s={"weights": step_s * 0.8, "launch": step_s * 0.2})


SETUPS = [  # (batch_size, microbatches, context_len)
    (b, mb, ctx) for b in (8, 16, 32, 64) for mb in (1, 2, 4) for ctx in (128, 512) if b % mb == 0
]


def write_measurements(folder: Path, true_params: dict[str, float], count: int) -> list[Measurement]:
    """``count`` hardware results of small-h100x1 whose step times the stand-in gives at ``true_params``."""
    for i, (batch, mb, ctx) in enumerate(SETUPS[:count]):
        experiment = load_experiment("small-h100x1", [f"workload.batch_size={batch}",
                                                      f"workload.context_len={ctx}",
                                                      f"plan.microbatches={mb}", f"name=small-{i}"])
        plan = build_plan(experiment, "plan")
        metrics = Metrics(1.0, 1.0, 1.0, None, mb, plan.describe())
        placeholder = RunResult(source="hardware", experiment=experiment.to_dict(), plan_name="plan",
                                plan=plan.to_dict(), metrics=metrics, environment={})
        probe = Measurement(key="probe", path="", result=placeholder, experiment=experiment, plan=plan)
        step_s = stand_in_step_time_s(probe, true_params)
        result = RunResult(source="hardware", experiment=experiment.to_dict(), plan_name="plan", plan=plan.to_dict(),
                           metrics=Metrics(batch / step_s, step_s, step_s, None, mb, plan.describe()),
                           environment={"synthetic": True})
        write_result(folder / f"small-{i}.json", result)
    return load_measurements([str(folder)])

