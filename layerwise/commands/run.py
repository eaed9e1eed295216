"""``layerwise run EXP.yaml [--plan NAME] [--set k=v ...] [--json OUT] ...``: launch torchrun for the plan.

Starts one process per device of the plan on this host (``--nnodes``/``--node-rank``/
``--rdzv-endpoint`` pass through to torchrun for several nodes), streams their output, and on
failure prints one line and exits non-zero (2 for bad input found before launch, 1 otherwise).
Output paths (``--json``, ``--trace``, ``--dump-outputs``) are checked before launch. SIGINT or
SIGTERM ends torchrun and every worker, waits for them, and exits 128 + the signal number.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from executor.launch import (
    STARTUP_MARGIN_S,
    RunInterrupted,
    check_before_launch,
    run_torchrun,
    torchrun_command,
)
from executor.serving.launch import SERVING_BACKSTOP_S, check_serving_launch
from executor.worker import (
    add_worker_arguments,
    attention_request,
    check_output_paths,
    choose_backend,
    default_timeout_s,
    resolve,
)
from serving.setup import experiment_is_serving
from topology.plan import Plan

LAUNCH_OPTIONS = ("--nnodes", "--node-rank", "--rdzv-endpoint", "--rdzv-id", "--rdzv-backend",
                  "--master-addr", "--master-port")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_worker_arguments(parser)
    parser.add_argument("--nnodes", type=int, default=1, help="torchrun: number of nodes (default 1)")
    parser.add_argument("--node-rank", type=int, default=None, help="torchrun: this node's rank")
    parser.add_argument("--rdzv-endpoint", default=None, help="torchrun: rendezvous host:port (several nodes)")
    parser.add_argument("--rdzv-id", default=None, help="torchrun: rendezvous id")
    parser.add_argument("--rdzv-backend", default=None, help="torchrun: rendezvous backend (e.g. c10d)")
    parser.add_argument("--master-addr", default=None, help="torchrun: master address (static rendezvous)")
    parser.add_argument("--master-port", default=None, help="torchrun: master port (static rendezvous)")


def worker_args(args: argparse.Namespace) -> list[str]:
    """The worker's command line, rebuilt from the parsed options."""
    out = [args.experiment]
    for flag, value in (("--plan", args.plan), ("--json", args.json), ("--trace", args.trace),
                        ("--backend", args.backend), ("--fill", args.fill),
                        ("--dump-outputs", args.dump_outputs), ("--fault", args.fault),
                        ("--sdpa-backend", args.sdpa_backend), ("--decode-attention", args.decode_attention),
                        ("--prefill-attention", args.prefill_attention),
                        ("--serving-attention", args.serving_attention)):
        if value is not None:
            out += [flag, str(value)]
    if args.timeout_s is not None:
        out += ["--timeout-s", str(args.timeout_s)]
    for override in args.overrides:
        out += ["--set", override]
    return out


def torchrun_args(args: argparse.Namespace) -> list[str]:
    if args.nnodes == 1 and all(getattr(args, o[2:].replace("-", "_")) is None for o in LAUNCH_OPTIONS[1:]):
        return []
    out = []
    for option in LAUNCH_OPTIONS:
        value = getattr(args, option[2:].replace("-", "_"))
        if value is not None:
            out += [option, str(value)]
    return out


def run(args: argparse.Namespace) -> int:
    if experiment_is_serving(args.experiment, args.overrides):
        return run_serving(args)
    check_output_paths(args, rank=0, is_dump_rank=True)
    experiment, plan_name, plan = resolve(args)
    if args.plan and args.plan.endswith(".json"):
        args.plan = str(Path(args.plan).resolve())  # the workers read the same plan file
    else:
        args.plan = plan_name  # the workers resolve the same plan
    attention_request(args)  # a contradiction is bad input: refused before launch
    backend = choose_backend(args.backend)
    nproc = check_before_launch(plan, experiment.workload, args.nnodes, backend, args.fill)
    timeout_s = args.timeout_s if args.timeout_s is not None else default_timeout_s(backend)
    command = torchrun_command(nproc, worker_args(args), torchrun_args(args))
    print(f"layerwise run: {experiment.name}/{plan_name}: {plan.describe()} on {plan.num_devices} "
          f"{'GPUs' if backend == 'nccl' else 'CPU processes'} ({backend})", flush=True)
    return _outcome(plan, command, timeout_s + STARTUP_MARGIN_S)


def run_serving(args: argparse.Namespace) -> int:
    """A serving experiment: the same launcher; the workers serve (:mod:`executor.serving.worker`)."""
    setup, plan_name, plan, nproc = check_serving_launch(args)
    args.plan = str(Path(args.plan).resolve()) if args.plan and args.plan.endswith(".json") else plan_name
    backend = choose_backend(args.backend)
    timeout_s = args.timeout_s if args.timeout_s is not None else default_timeout_s(backend)
    command = torchrun_command(nproc, worker_args(args), torchrun_args(args))
    print(f"layerwise run: {setup.experiment.name}/{plan_name}: serving on {plan.describe()}, {plan.num_devices} "
          f"{'GPUs' if backend == 'nccl' else 'CPU processes'} ({backend})", flush=True)
    return _outcome(plan, command, timeout_s + STARTUP_MARGIN_S + SERVING_BACKSTOP_S)


def _outcome(plan: Plan, command: list[str], backstop_s: float) -> int:
    try:
        outcome = run_torchrun(plan, command, backstop_s)
    except RunInterrupted as stop:
        print(f"layerwise run: {stop}: ended torchrun and its workers ({stop.processes_ended} processes), "
              f"no result written", file=sys.stderr, flush=True)
        return 128 + stop.signum
    if outcome.returncode != 0:
        print(f"layerwise run: {outcome.error}", file=sys.stderr, flush=True)
        return 1
    return 0

