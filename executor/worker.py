"""One process of a run: ``torchrun --nproc-per-node N -m executor EXP.yaml [options]``.

Reads the experiment file, builds the named plan, checks that it can run here (before any
process group starts), then builds this rank's shard, runs the workload's schedule, and has
rank 0 write the ``RunResult`` (source "hardware") atomically. torchrun's ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` are read here, once, and passed down explicitly.

A failure after the process groups start (a peer died or hung past ``--timeout-s``) prints one
line naming this rank, its stage and the peer it waited for, and exits 3 without writing results.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from executor.attention import AUTO, DECODE_PATHS, PREFILL_PATHS
from executor.attention_choice import AttentionRequest, choose_attention, world_max
from executor.checks import check_device_memory, check_plan_runs
from executor.environment import collect_environment
from executor.faults import parse_fault
from executor.groups import build_groups, tp_allreduce
from executor.launch import FAILURE_EXIT_CODE
from executor.layout import RankLayout, rank_layout
from executor.model import StageModel, no_allreduce
from executor.pipeline import (
    RankRun,
    RankTimings,
    prefill_input,
    run_decode,
    run_prefill,
    run_prefill_pass,
    time_stage_collectives_s,
)
from executor.refusal import refuse
from executor.results import build_metrics, rank_record
from serving.setup import experiment_is_serving
from topology.atomic_io import check_output_file, write_bytes_atomic
from topology.errors import LayerwiseError
from topology.experiment import Experiment, build_plan, load_experiment
from topology.plan import Plan, check_plan_on_cluster, load_plan_json
from topology.results import HardwareDetails, RunResult, write_result
from topology.schema.fields import cli_number

BACKENDS = ("auto", "nccl", "gloo")
SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION",
                 "math": "MATH"}
FILLS = ("seeded", "prefill")
DEFAULT_TIMEOUT_GPU_S = 300.0
DEFAULT_TIMEOUT_CPU_S = 60.0


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the worker and ``layerwise run`` (which passes them through)."""
    parser.add_argument("experiment", help="experiment YAML file (or a shipped experiment name)")
    parser.add_argument("--plan", default=None,
                        help="plan name in the experiment (default: the first), or a plan JSON file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an experiment entry by dotted path (repeatable)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the RunResult JSON here (rank 0)")
    parser.add_argument("--trace", default=None, metavar="OUT",
                        help="write a torch.profiler Chrome trace per rank (OUT with .rankN inserted)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="nccl on GPUs, gloo on CPU (auto)")
    parser.add_argument("--timeout-s", type=cli_number("positive"), default=None,
                        help=f"end the run if a peer is silent this long (default {DEFAULT_TIMEOUT_GPU_S:.0f} on GPU, "
                             f"{DEFAULT_TIMEOUT_CPU_S:.0f} on CPU)")
    parser.add_argument("--fill", choices=FILLS, default="seeded",
                        help="decode: fill the KV cache with seeded values, or by a prefill of context_len - 1 tokens")
    parser.add_argument("--dump-outputs", default=None, metavar="FILE",
                        help="debug: the last stage writes its outputs (torch.save: prefill (B,S,h), decode (T,B,h))")
    parser.add_argument("--sdpa-backend", choices=("auto", *SDPA_BACKENDS, "matmul"), default="auto",
                        help="restrict scaled_dot_product_attention to one kernel (default: PyTorch chooses); "
                             "matmul: decode attention as two batched GEMMs around a float32 softmax, no SDPA")
    parser.add_argument("--decode-attention", choices=(AUTO, *DECODE_PATHS), default=AUTO,
                        help="decode GQA path: auto (default) measures the candidates on this run's shape at "
                             "start-up and runs the fastest; or one path (docs/executor.md)")
    parser.add_argument("--prefill-attention", choices=(AUTO, *PREFILL_PATHS), default=AUTO,
                        help="prefill GQA path: auto (default: measured at start-up), gqa or expand")
    parser.add_argument("--fault", default=None, metavar="KIND:RANK:STEP",
                        help="tests: kill:RANK:STEP or hang:RANK:STEP")
    parser.add_argument("--serving-attention", choices=("auto", "paged-varlen", "varlen-gather", "per-request"),
                        default="auto", help="serving workloads: the attention path (default auto: the first "
                                             "that agrees with the reference at start-up)")


def check_output_paths(args: argparse.Namespace, rank: int, is_dump_rank: bool) -> None:
    """Before any work: the files this rank will write can be written (``--json``: rank 0;
    ``--trace``: every rank, OUT with .rankN inserted; ``--dump-outputs``: the dumping rank)."""
    if args.json is not None and rank == 0:
        check_output_file(args.json, "--json")
    if args.trace is not None:
        trace = Path(args.trace)
        check_output_file(trace.with_name(f"{trace.stem}.rank{rank}{trace.suffix or '.json'}"), "--trace")
    if args.dump_outputs is not None and is_dump_rank:
        check_output_file(args.dump_outputs, "--dump-outputs")


def choose_backend(requested: str) -> str:
    if requested != "auto":
        return requested
    return "nccl" if torch.cuda.is_available() else "gloo"


def default_timeout_s(backend: str) -> float:
    return DEFAULT_TIMEOUT_GPU_S if backend == "nccl" else DEFAULT_TIMEOUT_CPU_S


def attention_backend(name: str) -> contextlib.AbstractContextManager[Any]:
    """``sdpa_kernel`` restricted to one backend, or no restriction for "auto"."""
    if name in ("auto", "matmul"):
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([getattr(SDPBackend, SDPA_BACKENDS[name])])


def attention_request(args: argparse.Namespace) -> AttentionRequest:
    """The attention paths asked for; ``--sdpa-backend matmul`` is the decode path ``matmul``."""
    if args.sdpa_backend != "matmul":
        pinned = args.sdpa_backend if args.sdpa_backend in SDPA_BACKENDS else None
        return AttentionRequest(decode=args.decode_attention, prefill=args.prefill_attention, sdpa_kernel=pinned)
    if args.decode_attention not in (AUTO, "matmul"):
        raise LayerwiseError("--decode-attention",
                             f"{args.decode_attention} contradicts --sdpa-backend matmul (the matmul decode path)")
    return AttentionRequest(decode="matmul", prefill=args.prefill_attention,
                            decode_source="--sdpa-backend")


def resolve(args: argparse.Namespace) -> tuple[Experiment, str, Plan]:
    """The experiment and the plan to run: a plan of the experiment by name, or a plan JSON file
    (``--plan best.plan.json``, as ``layerwise search --out`` writes) for the experiment's model."""
    experiment = load_experiment(args.experiment, args.overrides)
    if args.plan and args.plan.endswith(".json"):
        plan = load_plan_json(args.plan)
        if plan.model != experiment.model:
            raise LayerwiseError("--plan", f"{args.plan!r} is a plan for model {plan.model.name!r}, "
                                           f"not the experiment's {experiment.model.name!r}")
        check_plan_on_cluster(plan, experiment.cluster, "--plan")
        return experiment, Path(args.plan).name.removesuffix(".json").removesuffix(".plan"), plan
    plan_name = args.plan or experiment.plan_names[0]
    return experiment, plan_name, build_plan(experiment, plan_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m executor", description="one rank of an executor run")
    add_worker_arguments(parser)
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    serving = _serving_run(args, rank, world_size, local_rank)
    if serving is not None:
        return serving
    try:
        experiment, plan_name, plan = resolve(args)
        fault = parse_fault(args.fault)
        attention_request(args)
        backend = choose_backend(args.backend)
        check_plan_runs(plan, experiment.workload, world_size, args.fill)
        layout = rank_layout(plan, rank)
        check_output_paths(args, rank, layout.is_last_stage and layout.tp_index == 0)
    except LayerwiseError as exc:
        return refuse(rank, exc)
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    try:
        if device.type == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise LayerwiseError("devices", f"rank {rank} has local rank {local_rank} but this host has "
                                                f"{torch.cuda.device_count()} GPUs")
            torch.cuda.set_device(device)
            free_bytes, _ = torch.cuda.mem_get_info(device)
            check_device_memory(plan, rank, free_bytes)
    except LayerwiseError as exc:  # this rank's own device: every failing rank says so
        print(f"executor: error: {exc}", file=sys.stderr, flush=True)
        return 2
    timeout_s = args.timeout_s if args.timeout_s is not None else default_timeout_s(backend)
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout_s),
                            device_id=device if device.type == "cuda" else None)
    run: RankRun | None = None
    try:
        groups = build_groups(layout, timeout_s)
        run = _build_run(experiment, plan, layout, groups, device, fault, args)
        with attention_backend(args.sdpa_backend):
            timings = _execute(run, args.trace, args.fill, attention_request(args))
        _report(run, experiment, plan_name, plan, timings, backend, args)
    except Exception as exc:  # a peer died or timed out, or a CUDA/NCCL error: one line, no results
        if not isinstance(exc, LayerwiseError):  # e.g. a disk that filled up: its one line says it all
            traceback.print_exc(file=sys.stderr)
        print(_failure_line(layout, run, exc), file=sys.stderr, flush=True)
        os._exit(FAILURE_EXIT_CODE)  # peers may be blocked; do not wait in destroy_process_group
    dist.destroy_process_group()
    return 0


def _serving_run(args: argparse.Namespace, rank: int, world_size: int, local_rank: int) -> int | None:
    """A serving experiment (``workload.phase: serve``) runs in :mod:`executor.serving.worker`: its
    exit code; None for a fixed-batch experiment."""
    try:
        serving = experiment_is_serving(args.experiment, args.overrides)
    except LayerwiseError as exc:
        return refuse(rank, exc)
    if not serving:
        return None
    from executor.serving.worker import serving_main

    backend = choose_backend(args.backend)
    timeout_s = args.timeout_s if args.timeout_s is not None else default_timeout_s(backend)
    return serving_main(args, rank, world_size, local_rank, backend, timeout_s)


def _failure_line(layout: RankLayout, run: RankRun | None, exc: BaseException) -> str:
    where = f"rank {layout.rank} (stage {layout.stage}, {layout.device})"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if run is None:
        return f"executor: failed: {where} while setting up: {detail}"
    act = run.activity
    peer = f" from {layout.describe_rank(act.peer)}" if act.peer is not None else ""
    tp = f" (TP group ranks {list(layout.stage_ranks[layout.stage])})" if layout.tp_degree > 1 else ""
    return (f"executor: failed: {where} while {act.what}{peer}{tp} at step {act.step}, "
            f"microbatch {act.microbatch}: {detail}")


def _build_run(experiment: Experiment, plan: Plan, layout: RankLayout, groups: Any, device: torch.device,
               fault: Any, args: argparse.Namespace) -> RankRun:
    workload = experiment.workload
    stage = plan.stages[layout.stage]
    dtype = torch.bfloat16 if plan.model.dtype_bytes == 2 else torch.float32
    started = time.perf_counter()
    stage_model = StageModel(
        plan.model, stage.layers, stage.tp_degree, layout.tp_index, workload.seed, workload.batch_size,
        workload.kv_capacity_tokens, device, dtype,
        allreduce=tp_allreduce(groups.tp) if groups.tp is not None else no_allreduce,
    )
    run = RankRun(
        stage_model=stage_model, layout=layout, groups=groups, workload=workload, microbatches=plan.microbatches,
        device=device, dtype=dtype,
        use_graphs=workload.cuda_graphs and device.type == "cuda" and workload.phase == "decode",
        fault=fault, dump=args.dump_outputs is not None,
    )
    if workload.phase == "decode" and args.fill == "seeded":
        stage_model.fill_kv_seeded(workload.context_len - 1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()  # hand back the weight generator's float32 temporaries
    run.setup_s = time.perf_counter() - started
    return run


def _execute(run: RankRun, trace: str | None, fill: str, request: AttentionRequest) -> RankTimings:
    workload = run.workload
    prefill_len = workload.prompt_len if workload.phase == "prefill" else (
        workload.context_len - 1 if fill == "prefill" else None)
    run.activity.what = "measuring the attention paths"
    choices = choose_attention(run.stage_model, workload, run.microbatch_size, prefill_len, run.use_graphs, request,
                               world_max(run.device) if run.layout.world_size > 1 else None, workload.seed)
    if workload.phase == "decode" and fill == "prefill":
        prompt_len = workload.context_len - 1
        run_prefill_pass(run, prompt_len, prefill_input(run, prompt_len), run.dump)
    schedule = run_decode if workload.phase == "decode" else run_prefill
    if trace is None:
        timings = schedule(run)
    else:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if run.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as profiler:
            timings = schedule(run)
        path = Path(trace)
        final = path.with_name(f"{path.stem}.rank{run.layout.rank}{path.suffix or '.json'}")
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.tmp")
        profiler.export_chrome_trace(str(partial))
        os.replace(partial, final)  # atomic: a reader never sees half a trace
    b = run.microbatch_size
    h = run.stage_model.model.hidden_size
    payload = (b, h) if workload.phase == "decode" else (b, workload.prompt_len, h)
    timings.allreduces_per_iter = 2 * len(run.stage_model.layers) * run.microbatches if run.groups.tp else 0
    timings.allreduce_s = time_stage_collectives_s(run, payload, timings.allreduces_per_iter)
    timings.attention = tuple(choices)
    return timings


def _report(run: RankRun, experiment: Experiment, plan_name: str, plan: Plan, timings: RankTimings,
            backend: str, args: argparse.Namespace) -> None:
    layout = run.layout
    record = rank_record(layout.rank, layout.stage, timings.elapsed_s, timings.measured_iters, timings.compute_s,
                         timings.idle_s, timings.allreduce_s, timings.allreduces_per_iter)
    record["setup_s"] = run.setup_s
    records: list[Any] = [None] * layout.world_size
    run.activity.what = "gathering timings"
    dist.all_gather_object(records, record)
    if args.dump_outputs and layout.is_last_stage and layout.tp_index == 0:
        buffer = io.BytesIO()
        torch.save(dict(run.outputs), buffer)
        write_bytes_atomic(args.dump_outputs, buffer.getvalue())
    if layout.rank != 0:
        return
    workload = experiment.workload
    attention = timings.attention
    hardware = HardwareDetails(
        backend=backend,
        cuda_graphs=run.use_graphs,
        dtype=str(run.dtype).replace("torch.", ""),
        kv_fill=args.fill if workload.phase == "decode" else "prefill",
        kv_capacity_tokens=workload.kv_capacity_tokens,
        sdpa_backend=args.sdpa_backend,
        communication_timing="graph-replay" if run.use_graphs else "eager",
        communication_note=(
            "TP all-reduces timed apart on each stage's group as a burst of one iteration's calls, "
            + ("captured in a CUDA graph and replayed, as the step is" if run.use_graphs else "issued eagerly, as "
               "the step issues them")),
    )
    metrics = build_metrics(plan, workload, records, hardware)
    result = RunResult(
        source="hardware", experiment=experiment.to_dict(), plan_name=plan_name, plan=plan.to_dict(),
        metrics=metrics, environment=collect_environment(run.device, backend, layout.world_size, attention),
    )
    if args.json:
        write_result(args.json, result)
    tpot = f", TPOT {metrics.tpot_s * 1e3:.3f} ms" if metrics.tpot_s is not None else ""
    print(f"executor: {experiment.name}/{plan_name} {plan.describe()} {workload.phase} batch {workload.batch_size}: "
          f"{metrics.tokens_per_s:.1f} tokens/s, step {metrics.step_time_s * 1e3:.3f} ms{tpot}"
          + (f" -> {args.json}" if args.json else ""), flush=True)
