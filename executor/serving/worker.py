"""One process of a serving run: ``torchrun --nproc-per-node N -m executor SERVE.yaml [options]``
(``executor.worker`` hands a ``workload.phase: serve`` experiment here).

Checks everything before any process group (one line on rank 0, exit 2, nothing written), builds
this rank's shard, serves the workload, and has rank 0 write the ``layerwise-serving-run`` record
(``--json``, atomically) and print the latency summary. A failure after the groups start prints one
line naming the rank and exits 3 without writing, as the fixed-batch worker does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from executor.groups import build_groups
from executor.layout import RankLayout, rank_layout
from executor.refusal import refuse
from executor.serving.attention import AUTO, PATHS
from executor.serving.clock import RunClock
from executor.serving.session import (
    ServingOptions,
    build_weights,
    check_serving_plan,
    prepare_rank,
    serve,
)
from executor.serving.summary import summary_lines
from executor.serving.transport import Links
from serving.setup import ServingSetup, load_serving_setup
from topology.atomic_io import check_output_file, write_text_atomic
from topology.errors import LayerwiseError
from topology.experiment import build_plan
from topology.plan import Plan, check_plan_on_cluster, load_plan_json

SERVING_ATTENTION = (AUTO, *PATHS)
FAILURE_EXIT_CODE = 3  # as executor.launch
# Options of the fixed-batch run that mean nothing to a serving run, with their defaults.
FIXED_BATCH_ONLY = {"trace": None, "fill": "seeded", "fault": None, "sdpa_backend": "auto",
                    "decode_attention": "auto", "prefill_attention": "auto"}


def refuse_fixed_batch_options(args: argparse.Namespace) -> None:
    for name, default in FIXED_BATCH_ONLY.items():
        if getattr(args, name, default) != default:
            raise LayerwiseError(f"--{name.replace('_', '-')}", "applies to fixed-batch runs, not to a serving "
                                                                "workload (phase: serve)")


def resolve_serving(args: argparse.Namespace) -> tuple[ServingSetup, str, Plan]:
    """The serving experiment and its plan (by name, default the first; or a plan JSON file)."""
    setup = load_serving_setup(args.experiment, args.overrides)
    experiment = setup.experiment
    if args.plan and args.plan.endswith(".json"):
        plan = load_plan_json(args.plan)
        check_plan_on_cluster(plan, experiment.cluster, "--plan")  # its devices exist, its stages fit their HBM
        if plan.model != experiment.model:
            raise LayerwiseError("--plan", f"{args.plan!r} is a plan for model {plan.model.name!r}, "
                                           f"not the experiment's {experiment.model.name!r}")
        return setup, Path(args.plan).name.removesuffix(".json").removesuffix(".plan"), plan
    name = args.plan or experiment.plan_names[0]
    return setup, name, build_plan(experiment, name)


def check_outputs(args: argparse.Namespace, rank: int) -> None:
    if rank == 0 and args.json is not None:
        check_output_file(args.json, "--json")
    if rank == 0 and args.dump_outputs is not None:
        check_output_file(args.dump_outputs, "--dump-outputs")


def serving_main(args: argparse.Namespace, rank: int, world_size: int, local_rank: int, backend: str,
                 timeout_s: float) -> int:
    """The serving run of this rank (torchrun's environment already read by the caller)."""
    try:
        refuse_fixed_batch_options(args)
        setup, plan_name, plan = resolve_serving(args)
        config = check_serving_plan(setup, plan, world_size)
        layout = rank_layout(plan, rank)
        check_outputs(args, rank)
    except LayerwiseError as exc:
        return refuse(rank, exc)
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout_s),
                            device_id=device if device.type == "cuda" else None)
    stage = "setting up"
    try:
        groups = build_groups(layout, timeout_s)
        ctrl = dist.new_group(list(range(world_size)), timeout=timedelta(seconds=timeout_s), backend="gloo")
        weights = build_weights(plan, layout, setup.workload.seed, device)
        options = ServingOptions(attention=args.serving_attention, heartbeat_s=max(1.0, timeout_s / 4))
        prepared = prepare_rank(weights, config, Links(layout, ctrl, groups), RunClock(), options, groups.tp)
        stage = "serving"
        result = serve(setup, plan, plan_name, config, prepared, options, backend)
        if result is not None:
            stage = "writing the record"
            if args.json:
                write_text_atomic(args.json, json.dumps(result.record.to_dict()) + "\n")
            if args.dump_outputs:
                write_text_atomic(args.dump_outputs, json.dumps({str(k): v for k, v in
                                                                 sorted(result.generated.items())}) + "\n")
            head = (f"executor: serving {setup.experiment.name}/{plan_name} {plan.describe()}: "
                    f"{prepared.selection.path} attention")
            print(head, flush=True)
            for line in summary_lines(result.run, plan.num_devices, setup.slos):
                print(f"executor:   {line}", flush=True)
            if args.json:
                print(f"executor: -> {args.json}", flush=True)
    except Exception as exc:  # a peer died or timed out, or a CUDA/NCCL error: one line, no record
        if not isinstance(exc, LayerwiseError):
            traceback.print_exc(file=sys.stderr)
        print(_failure_line(layout, stage, exc), file=sys.stderr, flush=True)
        os._exit(FAILURE_EXIT_CODE)  # peers may be blocked; do not wait in destroy_process_group
    dist.destroy_process_group()
    return 0


def _failure_line(layout: RankLayout, stage: str, exc: BaseException) -> str:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"executor: failed: rank {layout.rank} (stage {layout.stage}, {layout.device}) while {stage}: {detail}"
