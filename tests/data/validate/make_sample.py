"""Make the validate tests' sample data: SYNTHETIC "hardware" results and a tiny profile.

Nothing here was measured. The "measurements" are the simulator's own predictions with
perturbed parameters (:data:`TRUTH`) and a deterministic +-2% scatter; they carry the
label source "hardware" only so that ``layerwise validate`` accepts them, and every file
says ``"synthetic": true`` in its environment (the report prints a warning for it). The
"profiled" trace beside one result is the simulator's trace at the same perturbed parameters.

Run from the repository root:  python tests/data/validate/make_sample.py
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from sim.resolve import resolve_given
from sim.simulate import simulate
from topology.atomic_io import write_text_atomic
from topology.experiment import Experiment, build_plan, load_experiment
from topology.hardware import load_gpu
from topology.profile import HardwareProfile, ProfileParams, write_profile
from topology.results import Metrics, RunResult, write_result

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "hardware"
PROFILE_PATH = HERE / "profile.json"
SEED = 20240611
NOISE = 0.02  # relative scatter of the synthetic "measurements"
CREATED_UTC = "2000-01-01T00:00:00+00:00"  # fixed, so regenerating gives identical files
GPU_PRESET = "h100-sxm"
TRACED = "small-b64-mb4"  # the experiment that gets a "profiled" trace

# The calibration profile: the datasheet scaled by these factors (synthetic "measurements").
PROFILE_FACTORS = {"hbm_bw_bytes_per_s": 0.92, "matmul_flops_per_s": 0.7,
                   "launch_overhead_graph_s": 1.3, "launch_overhead_eager_s": 0.9}
# The "hardware" the synthetic results come from: the profile plus these fitted-parameter
# values (efficiencies as fractions; launch overheads as multiples of the profile's).
TRUTH_EFFICIENCIES = {"hbm_efficiency": 0.85, "compute_efficiency": 0.9}
TRUTH_LAUNCH_MULTIPLES = {"launch_overhead_graph_s": 0.75, "launch_overhead_eager_s": 1.3}

# name -> (experiment, overrides)
SAMPLES = {
    "small-b64-mb1": ("small-h100x1", ["workload.batch_size=64", "plan.microbatches=1"]),
    "small-b64-mb2": ("small-h100x1", ["workload.batch_size=64", "plan.microbatches=2"]),
    "small-b64-mb4": ("small-h100x1", ["workload.batch_size=64", "plan.microbatches=4"]),
    "small-b64-mb1-eager": ("small-h100x1", ["workload.batch_size=64", "workload.cuda_graphs=false"]),
    "small-b16-ctx1024": ("small-h100x1", ["workload.batch_size=16", "workload.context_len=1024"]),
    "small-b16-ctx1024-eager": ("small-h100x1", ["workload.batch_size=16", "workload.context_len=1024",
                                                 "workload.cuda_graphs=false"]),
    "llama8b-b16-mb1": ("small-h100x1", ["model=llama3-8b", "workload.batch_size=16", "workload.context_len=512"]),
    "llama8b-b16-mb2": ("small-h100x1", ["model=llama3-8b", "workload.batch_size=16", "workload.context_len=512",
                                         "plan.microbatches=2"]),
    "small-prefill-b8": ("small-h100x1", ["workload.phase=prefill", "workload.batch_size=8",
                                          "workload.prompt_len=256", "workload.context_len=256"]),
}


def sample_profile() -> HardwareProfile:
    gpu = load_gpu(GPU_PRESET)
    params = ProfileParams(
        hbm_bw_bytes_per_s=gpu.hbm_bw_bytes_per_s * PROFILE_FACTORS["hbm_bw_bytes_per_s"],
        matmul_flops_per_s=gpu.dense_bf16_flops_per_s * PROFILE_FACTORS["matmul_flops_per_s"],
        launch_overhead_graph_s=gpu.launch_overhead_graph_s * PROFILE_FACTORS["launch_overhead_graph_s"],
        launch_overhead_eager_s=gpu.launch_overhead_eager_s * PROFILE_FACTORS["launch_overhead_eager_s"],
    )
    return HardwareProfile(gpu_name=gpu.name, gpu_count=1, params=params, source="calibrate",
                           environment={"synthetic": True, "generator": "tests/data/validate/make_sample.py"},
                           created_utc=CREATED_UTC)


def truth_profile(profile: HardwareProfile) -> HardwareProfile:
    p = profile.params
    launch = {"launch_overhead_graph_s": p.launch_overhead_graph_s,
              "launch_overhead_eager_s": p.launch_overhead_eager_s}
    sim_params = {**TRUTH_EFFICIENCIES,
                  **{name: float(launch[name] or 0.0) * m for name, m in TRUTH_LAUNCH_MULTIPLES.items()}}
    return dataclasses.replace(profile, params=dataclasses.replace(p, sim_params=sim_params))


def _experiment(name: str, base: str, overrides: list[str]) -> Experiment:
    return load_experiment(base, [*overrides, f"name={name}", "workload.warmup_iters=2",
                                  "workload.measured_iters=10"])


def _shrink_trace(path: Path) -> None:
    """Keep the committed sample small: metadata plus the first half (in time) of the slices."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    events = raw["traceEvents"] if isinstance(raw, dict) else raw
    slices = [e for e in events if e.get("ph") == "X"]
    start_us = min(float(e["ts"]) for e in slices)
    end_us = max(float(e["ts"]) + float(e["dur"]) for e in slices)
    middle_us = (start_us + end_us) / 2
    kept = [e for e in events if e.get("ph") != "X" or float(e["ts"]) < middle_us]
    write_text_atomic(path, json.dumps({"traceEvents": kept, "synthetic": True}, separators=(",", ":")) + "\n")


def main() -> None:
    rng = np.random.default_rng(SEED)
    profile = sample_profile()
    truth = truth_profile(profile)
    shutil.rmtree(RESULTS_DIR, ignore_errors=True)
    write_profile(PROFILE_PATH, profile)
    for name, (base, overrides) in SAMPLES.items():
        experiment = _experiment(name, base, overrides)
        plan = build_plan(experiment, "plan")
        trace = str(RESULTS_DIR / f"{name}.trace.json") if name == TRACED else None
        simulated = simulate(resolve_given(experiment, plan, truth), trace_path=trace)
        scale = 1.0 + NOISE * float(rng.standard_normal())
        m = simulated.metrics
        step_s = m.step_time_s * scale
        stages = tuple(dataclasses.replace(s, compute_s=s.compute_s * scale, communication_s=s.communication_s * scale,
                                           idle_s=s.idle_s * scale) for s in m.stages)
        tokens = experiment.workload.tokens_per_iteration
        decode = experiment.workload.phase == "decode"
        metrics = Metrics(tokens_per_s=tokens / step_s, step_time_s=step_s, tpot_s=step_s if decode else None,
                          ttft_s=None if decode else step_s, microbatches=plan.microbatches,
                          plan_label=plan.describe(), stages=stages)
        result = RunResult(
            source="hardware",  # SYNTHETIC: the simulator's output, labelled so validate accepts it
            experiment=experiment.to_dict(), plan_name="plan", plan=plan.to_dict(), metrics=metrics,
            environment={"synthetic": True, "generator": "tests/data/validate/make_sample.py",
                         "truth_sim_params": truth.params.sim_params, "noise": NOISE},
            created_utc=CREATED_UTC,
        )
        write_result(RESULTS_DIR / f"{name}.json", result)
        if trace:
            _shrink_trace(Path(trace))
    print(f"wrote {len(SAMPLES)} synthetic results under {RESULTS_DIR} and {PROFILE_PATH}")


if __name__ == "__main__":
    main()
