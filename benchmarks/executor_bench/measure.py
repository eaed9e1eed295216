"""Run one benchmark case in this process: the executor's own decode loop or prefill pass (the code
every rank runs under ``layerwise run``, without the process group: one GPU, TP1 x PP1), then the
minimal reference on the same weights and cache.

The executor side is :func:`executor.pipeline.run_decode` / ``run_prefill`` on a
:class:`executor.model.StageModel` whose attention paths :func:`executor.attention_choice.choose_attention`
measured first, exactly as a run does. Iteration counts follow the case's floor: about
``TARGET_MEASURED_S`` of measured steps, at least ``MIN_ITERS``.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from executor.attention_choice import AttentionRequest, choose_attention
from executor.checks import check_device_memory
from executor.groups import StageGroups
from executor.layout import rank_layout
from executor.model import StageModel
from executor.pipeline import RankRun, run_decode, run_prefill
from executor.weights import seeded_normal
from executor_bench.floor import Floor, Rates, step_floor
from executor_bench.reference import ReferenceDecoder, time_reference_s
from executor_bench.shapes import BenchCase
from topology.cluster import load_cluster
from topology.errors import LayerwiseError
from topology.partition.tp_pp import partition_tp_pp
from topology.plan import Plan
from topology.workload import Workload

TARGET_MEASURED_S = 0.25
MIN_ITERS, MAX_ITERS = 10, 200
ASSUMED_BW_BYTES_PER_S = 2.0e12  # only to size iteration counts when no rate is known
SEED = 0


@dataclass(frozen=True)
class Iterations:
    warmup: int
    measured: int


@dataclass
class CaseResult:
    """What one case measured (seconds per step) and what it is compared with."""

    case: BenchCase
    status: str  # "ok", "skipped" (does not fit), "failed"
    message: str = ""
    graphs_used: bool = False
    iterations: Iterations | None = None
    step_s: float | None = None
    reference_step_s: float | None = None  # decode only
    floor: Floor | None = None
    attention: list[dict[str, Any]] = field(default_factory=list)  # the run's AttentionChoice records
    wall_s: float = 0.0


def case_workload(case: BenchCase, iterations: Iterations) -> Workload:
    prefill = case.phase == "prefill"
    return Workload(phase=case.phase, batch_size=case.batch, prompt_len=case.tokens if prefill else 1,
                    context_len=case.tokens, cuda_graphs=case.graphs, warmup_iters=iterations.warmup,
                    measured_iters=iterations.measured, seed=SEED)


def case_plan(case: BenchCase, workload: Workload, dtype_bytes: int) -> Plan:
    """TP1 x PP1 on a one-GPU cluster; the cluster's GPU only bounds the footprint (80 GB, the smaller
    of the two lent GPUs), so the same grid runs on an H100 and an H200."""
    return partition_tp_pp(case.layer.model(dtype_bytes), load_cluster("h100x1"), workload, tp=1, pp=1,
                           microbatches=1)


def choose_iterations(case: BenchCase, dtype_bytes: int, rates: Rates, quick_cpu: bool) -> Iterations:
    """Enough measured steps for about TARGET_MEASURED_S by the floor's estimate (prefill: a few passes)."""
    if quick_cpu:
        return Iterations(warmup=1, measured=2)
    if case.phase == "prefill":
        return Iterations(warmup=1, measured=3)
    probe = case_workload(case, Iterations(0, 1))
    floor = step_floor(case_plan(case, probe, dtype_bytes), probe, rates)
    estimate_s = floor.floor_s or floor.bytes_per_gpu / ASSUMED_BW_BYTES_PER_S
    measured = int(min(MAX_ITERS, max(MIN_ITERS, TARGET_MEASURED_S / max(estimate_s, 1e-6))))
    return Iterations(warmup=max(3, measured // 5), measured=measured)


def run_case(case: BenchCase, device: torch.device, rates: Rates, quick_cpu: bool) -> CaseResult:
    """Measure one case; a case that does not fit is skipped, one that fails is recorded (never raised)."""
    started_s = time.perf_counter()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype_bytes = 2 if dtype == torch.bfloat16 else 4
    result = CaseResult(case, "ok")
    try:
        result.iterations = choose_iterations(case, dtype_bytes, rates, quick_cpu)
        workload = case_workload(case, result.iterations)
        plan = case_plan(case, workload, dtype_bytes)
        result.floor = step_floor(plan, workload, rates)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            check_device_memory(plan, 0, torch.cuda.mem_get_info(device)[0])
        _measure(result, plan, workload, device, dtype)
    except LayerwiseError as exc:  # the one line says what does not fit
        result.status, result.message = "skipped", str(exc)
    except RuntimeError as exc:  # out of memory, no kernel for a shape: recorded, the grid goes on
        result.status = "failed"
        result.message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    finally:
        if device.type == "cuda":
            gc.collect()  # the case's tensors, before the next case allocates its own
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
    result.wall_s = time.perf_counter() - started_s
    return result


def _measure(result: CaseResult, plan: Plan, workload: Workload, device: torch.device, dtype: torch.dtype) -> None:
    case = result.case
    stage = plan.stages[0]
    model = StageModel(plan.model, stage.layers, 1, 0, workload.seed, workload.batch_size,
                       workload.kv_capacity_tokens, device, dtype)
    decode = case.phase == "decode"
    if decode:
        model.fill_kv_seeded(workload.context_len - 1)
    run = RankRun(stage_model=model, layout=rank_layout(plan, 0), groups=StageGroups(None, None, None, None),
                  workload=workload, microbatches=1, device=device, dtype=dtype,
                  use_graphs=case.graphs and device.type == "cuda" and decode, fault=None, dump=False)
    choices = choose_attention(model, workload, workload.batch_size, None if decode else workload.prompt_len,
                               run.use_graphs, AttentionRequest(), None, workload.seed)
    result.attention = [choice.to_dict() for choice in choices]
    result.graphs_used = run.use_graphs
    timings = run_decode(run) if decode else run_prefill(run)
    result.step_s = timings.elapsed_s / timings.measured_iters
    if decode:
        reference = ReferenceDecoder(model.shards, model.k_cache, model.v_cache, model.heads_local,
                                     model.kv_heads_local, model.head_dim, workload.context_len - 1)
        x = seeded_normal((workload.batch_size, plan.model.hidden_size), workload.seed, -1, "decode_input",
                          device, dtype)
        result.reference_step_s = time_reference_s(reference, x, workload.warmup_iters, workload.measured_iters,
                                                   run.use_graphs)
