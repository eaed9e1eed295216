"""One shape-study case in this process: the executor's own decode loop or prefill pass (the code
every rank runs under ``layerwise run``; one GPU, TP1 x PP1, no process group), written as a result
in the shared schema (``source: hardware``) that ``layerwise validate`` reads like any other run.

The attention path is chosen by measurement at start-up, as a run does; decode replays CUDA graphs,
prefill runs eagerly, as the executor runs them. Iterations: enough measured steps for about
``TARGET_MEASURED_S`` by a first timed step, within ``MIN_ITERS`` and ``MAX_ITERS``.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import torch

from executor.attention_choice import AttentionRequest, choose_attention
from executor.checks import check_device_memory
from executor.environment import collect_environment
from executor.groups import StageGroups
from executor.layout import rank_layout
from executor.model import StageModel
from executor.pipeline import RankRun, run_decode, run_prefill
from executor.results import build_metrics, rank_record
from shape_study.families import Case
from topology.errors import LayerwiseError
from topology.experiment import Experiment, build_plan, experiment_from_dict
from topology.results import HardwareDetails, RunResult

TARGET_MEASURED_S = 0.25
MIN_ITERS, MAX_ITERS = 8, 200
SEED = 0
RUNNER = "benchmarks/device/shape_study.py: the executor's decode loop / prefill pass in one process (TP1 x PP1)"


def case_experiment(case: Case, cluster: str, dtype_bytes: int, warmup: int, measured: int) -> Experiment:
    decode = case.phase == "decode"
    model = case.shape.model(dtype_bytes).to_dict()
    workload = {"phase": case.phase, "batch_size": case.batch, "context_len": case.tokens,
                "prompt_len": 1 if decode else case.tokens, "cuda_graphs": decode, "warmup_iters": warmup,
                "measured_iters": measured, "seed": SEED}
    return experiment_from_dict({"name": case.name, "description": f"shape study, family {case.shape.family}",
                                 "model": model, "cluster": cluster, "workload": workload,
                                 "plans": {"tp1": {"partitioner": "tp-pp", "tp": 1, "pp": 1, "microbatches": 1}}})


def _iterations(case: Case, first_step_s: float) -> tuple[int, int]:
    if case.phase == "prefill":
        return 1, 3
    measured = int(min(MAX_ITERS, max(MIN_ITERS, TARGET_MEASURED_S / max(first_step_s, 1e-6))))
    return max(3, measured // 5), measured


def run_step_case(case: Case, cluster: str, device: torch.device) -> dict[str, Any]:
    """Measure one case; returns ``{"status": "ok", "result": RunResult dict, ...}`` or why it did not run."""
    started = time.perf_counter()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype_bytes = 2 if dtype == torch.bfloat16 else 4
    try:
        probe = case_experiment(case, cluster, dtype_bytes, 1, 2)
        plan = build_plan(probe, "tp1")
        if device.type == "cuda":
            torch.cuda.empty_cache()
            check_device_memory(plan, 0, torch.cuda.mem_get_info(device)[0])
        model = StageModel(plan.model, plan.stages[0].layers, 1, 0, SEED, case.batch,
                           probe.workload.kv_capacity_tokens, device, dtype)
        decode = case.phase == "decode"
        if decode:
            model.fill_kv_seeded(case.tokens - 1)
        choices = choose_attention(model, probe.workload, case.batch, None if decode else case.tokens,
                                   decode and device.type == "cuda", AttentionRequest(), None, SEED)
        first = _timed(model, plan, probe, device, dtype, choices)  # a short run sizes the measured one
        experiment = case_experiment(case, cluster, dtype_bytes, *_iterations(case, first["step_s"]))
        measured = _timed(model, build_plan(experiment, "tp1"), experiment, device, dtype, choices)
        return {"status": "ok", "result": measured["result"], "wall_s": time.perf_counter() - started}
    except LayerwiseError as exc:
        return {"status": "skipped", "message": str(exc), "wall_s": time.perf_counter() - started}
    except RuntimeError as exc:  # out of memory, no kernel: recorded, the study goes on
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {"status": "failed", "message": f"{type(exc).__name__}: {text}", "wall_s": time.perf_counter() - started}
    finally:
        if device.type == "cuda":
            gc.collect()
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()


def _timed(model: StageModel, plan: Any, experiment: Experiment, device: torch.device, dtype: torch.dtype,
           choices: Any) -> dict[str, Any]:
    workload = experiment.workload
    decode = workload.phase == "decode"
    graphs = decode and device.type == "cuda"
    run = RankRun(stage_model=model, layout=rank_layout(plan, 0), groups=StageGroups(None, None, None, None),
                  workload=workload, microbatches=1, device=device, dtype=dtype, use_graphs=graphs, fault=None,
                  dump=False)
    timings = run_decode(run) if decode else run_prefill(run)
    record = rank_record(0, 0, timings.elapsed_s, timings.measured_iters, timings.compute_s, timings.idle_s, 0.0, 0)
    hardware = HardwareDetails(backend="none (one process)", cuda_graphs=graphs, dtype=str(dtype).replace("torch.", ""),
                               kv_fill="seeded" if decode else "prefill",
                               kv_capacity_tokens=workload.kv_capacity_tokens, sdpa_backend="auto",
                               communication_timing="none", communication_note="one GPU: no communication")
    metrics = build_metrics(plan, workload, [record], hardware)
    environment = collect_environment(device, "none", 1, choices)
    environment["runner"] = RUNNER
    environment["family"] = experiment.description.rsplit(" ", 1)[-1]
    result = RunResult(source="hardware", experiment=experiment.to_dict(), plan_name="tp1", plan=plan.to_dict(),
                       metrics=metrics, environment=environment)
    return {"step_s": metrics.step_time_s, "result": result.to_dict()}
