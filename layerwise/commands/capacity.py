"""``layerwise capacity EXPERIMENT``: the cheapest deployment that meets latency SLOs (``sim/capacity``,
``docs/capacity.md``).

The experiment is a serving experiment (``workload.phase: serve``). The SLOs are ``--slo`` flags
(``ttft_p99_ms=2000``; default: the experiment's ``slo:``); the objective is the highest request rate
per GPU, or with ``--rate R`` the fewest GPUs that serve R requests/s; ``--gpu-budget`` caps the GPUs
(default: the cluster's). The space: per-replica plans (``--replica-gpus``, ``--uneven``), replica
counts (``--replicas``), routers (``--routers``), ``--max-num-seqs``, ``--max-num-batched-tokens``,
``--chunked on,off`` and, with ``--disaggregated``, separate prefill and decode replicas. Tasks run
on ``--jobs`` local processes, or on Ray (``--ray auto|HOST:PORT``): the same result either way.

Prints the ranked table, the best deployment and its ``vllm serve`` command; ``--json``, ``--plot``
(the Pareto frontier), ``--out`` (the best replica plan as a plan file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from layerwise.commands.simulate import add_profile_flags, profile_choice
from layerwise.terminal import interrupts
from layerwise.terminal.arguments import positive_int
from layerwise.views.capacity_table import render_capacity
from serving.routing import ROUTERS
from serving.setup import load_serving_setup
from serving.slo import SloSpec
from serving.slo_flags import slo_spec_from_flags
from sim.capacity.launch import vllm_serve_commands
from sim.capacity.options import (
    DEFAULT_RESOLUTION,
    DEFAULT_TOP,
    DEFAULT_UNEVEN,
    DEFAULT_WAVE,
    FEWEST_GPUS,
    RATE_PER_GPU,
    CapacityOptions,
    Objective,
    SpaceOptions,
)
from sim.capacity.result import CapacityResult, capacity_result_to_dict
from sim.capacity.runners import LocalRunner, RayRunner, Runner, check_reachable
from sim.capacity.search import RunnerFactory, capacity_search
from sim.capacity.tasks import CapacityContext
from sim.inputs import resolve_basis
from topology.atomic_io import check_output_file, check_output_folder, write_bytes_atomic, write_text_atomic
from topology.errors import LayerwiseError

PROGRESS_EVERY_S = 2.0


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers, got {text!r}")
    return values


def _on_off(text: str) -> tuple[bool, ...]:
    words = {"on": True, "off": False}
    parts = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not parts or any(part not in words for part in parts):
        raise argparse.ArgumentTypeError(f"must be on, off or on,off; got {text!r}")
    return tuple(words[part] for part in parts)


def _routers(text: str) -> tuple[str, ...]:
    if text == "all":
        return ROUTERS
    parts = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in parts if part not in ROUTERS]
    if not parts or unknown:
        raise argparse.ArgumentTypeError(f"must be 'all' or among {', '.join(ROUTERS)}; got {text!r}")
    return parts


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1] (0.02 is 2%), got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="serving experiment YAML or shipped name (workload.phase: serve)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an experiment entry by dotted path (repeatable)")
    add_profile_flags(parser)
    parser.add_argument("--slo", action="append", default=[], metavar="METRIC_PCT_UNIT=BOUND",
                        help="an SLO, e.g. ttft_p99_ms=2000 (ttft, tpot, e2e, itl at p50, p90, p99; ms or s); "
                             "repeatable; default: the experiment's slo:")
    parser.add_argument("--rate", type=float, default=None, metavar="REQ_PER_S",
                        help="objective: the fewest GPUs that meet the SLOs at this rate (default: the highest "
                             "rate per GPU)")
    parser.add_argument("--gpu-budget", type=int, default=None, metavar="N",
                        help="at most N GPUs in all (default: the cluster's)")
    parser.add_argument("--resolution", type=_fraction, default=DEFAULT_RESOLUTION, metavar="FRACTION",
                        help=f"rate resolution as a ratio (default {DEFAULT_RESOLUTION}: capacities to within 2%%)")
    space = parser.add_argument_group("the space")
    space.add_argument("--replica-gpus", type=_int_list, default=None, metavar="LIST",
                       help="GPUs per replica to consider (default: every count that fits the model)")
    space.add_argument("--replicas", type=_int_list, default=None, metavar="LIST",
                       help="replica counts (default: 1, 2, 4, ... within the budget)")
    space.add_argument("--routers", type=_routers, default=None, metavar="LIST|all",
                       help="routers for several replicas (default: the experiment's)")
    space.add_argument("--max-num-seqs", type=_int_list, default=(128, 256, 512), metavar="LIST",
                       help="max_num_seqs values (default 128,256,512)")
    space.add_argument("--max-num-batched-tokens", type=_int_list, default=(2048, 8192), metavar="LIST",
                       help="max_num_batched_tokens values (default 2048,8192)")
    space.add_argument("--chunked", type=_on_off, default=(True, False), metavar="on,off",
                       help="chunked prefill on, off or both (default both)")
    space.add_argument("--uneven", type=int, default=DEFAULT_UNEVEN, metavar="K",
                       help=f"the plan search's K best uneven plans per GPU count (default {DEFAULT_UNEVEN}; 0: "
                            f"the uniform TP x PP family only)")
    space.add_argument("--disaggregated", action="store_true",
                       help="also search disaggregated deployments (P prefill + D decode replicas)")
    parser.add_argument("--top", type=positive_int, default=DEFAULT_TOP, metavar="K",
                        help=f"deployments resolved and ranked (default {DEFAULT_TOP})")
    parser.add_argument("--wave", type=positive_int, default=DEFAULT_WAVE, metavar="N",
                        help=f"tasks between updates of the best-so-far (default {DEFAULT_WAVE}; set it to the "
                             f"CPUs of a large Ray cluster; it, not --jobs or --ray, decides what is simulated)")
    parser.add_argument("--jobs", type=positive_int, default=None, help="local processes (default: all cores)")
    parser.add_argument("--ray", default=None, metavar="auto|HOST:PORT",
                        help="run the tasks on Ray: a running cluster, or auto (RAY_ADDRESS, else a local instance)")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write the whole result here")
    parser.add_argument("--plot", dest="plot_out", metavar="PNG", help="the Pareto frontier plot")
    parser.add_argument("--out", metavar="PLAN.json", help="write the best deployment's replica plan here")
    parser.add_argument("--confirm", metavar="DIR", default=None,
                        help="serve the best deployment that runs here as one replica for real (layerwise run) and "
                             "bisect its measured capacity under the same SLOs; probes and confirm.json in DIR")
    parser.add_argument("--vllm-model", default=None, metavar="ID",
                        help="model id in the vllm serve command (default: the experiment's model name)")


def _options(args: argparse.Namespace, default_slos: SloSpec, budget: int, router: str) -> CapacityOptions:
    slos = slo_spec_from_flags(args.slo, default_slos)
    if args.gpu_budget is not None and args.gpu_budget < 1:
        raise LayerwiseError("--gpu-budget", f"must be a positive integer, got {args.gpu_budget}")
    objective = Objective(RATE_PER_GPU) if args.rate is None else Objective(FEWEST_GPUS, args.rate)
    space = SpaceOptions(replica_gpus=args.replica_gpus, replicas=args.replicas, routers=args.routers or (router,),
                         max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
                         chunked=args.chunked, uneven=args.uneven, disaggregated=args.disaggregated)
    return CapacityOptions(slos=slos, objective=objective, gpu_budget=budget, space=space,
                           resolution=args.resolution, top=args.top, wave=args.wave)


class _Say:
    """Progress on stderr, at most one line every PROGRESS_EVERY_S seconds (the interrupt checked each time)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()  # quiet for the first PROGRESS_EVERY_S: a quick error stays one line

    def __call__(self, message: str) -> None:
        interrupts.check()
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            print(f"[capacity] {message}", file=sys.stderr, flush=True)


def _runner_factory(args: argparse.Namespace) -> RunnerFactory:
    jobs = args.jobs or os.cpu_count() or 1

    def make(context: CapacityContext) -> Runner:
        if args.ray is not None:
            return RayRunner(context, args.ray, cpus=args.jobs)
        return LocalRunner(context, jobs)

    return make


def _write_outputs(args: argparse.Namespace, result: CapacityResult) -> None:
    if args.json_out:
        write_text_atomic(args.json_out, json.dumps(capacity_result_to_dict(result), indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.json_out}")
    best = result.best
    if args.out and best is not None:
        write_text_atomic(args.out, best.deployment.plan.plan.to_json() + "\n")
        print(f"wrote {args.out} (one replica's plan: `layerwise simulate` and `layerwise run` take it as "
              f"`plans: {{best: {{file: {args.out}}}}}`)")
        decode = best.deployment.decode_plan
        if decode is not None:
            path = args.out[:-5] + ".decode.json" if args.out.endswith(".json") else args.out + ".decode.json"
            write_text_atomic(path, decode.plan.to_json() + "\n")
            print(f"wrote {path} (the decode replicas' plan)")
    if args.plot_out:
        from layerwise.views.capacity_plot import capacity_png

        write_bytes_atomic(args.plot_out, capacity_png(result, f"{result.experiment}: capacity under SLOs"))
        print(f"wrote {args.plot_out} (Pareto frontier)")


def run(args: argparse.Namespace) -> int:
    if args.ray not in (None, "auto"):
        check_reachable(args.ray)  # within seconds, before anything else
    setup = load_serving_setup(args.experiment, args.overrides)
    for option, path in (("--json", args.json_out), ("--plot", args.plot_out), ("--out", args.out)):
        if path:
            check_output_file(path, option)
    if args.confirm:
        check_output_folder(args.confirm, "--confirm")
    budget = args.gpu_budget if args.gpu_budget is not None else setup.experiment.cluster.num_devices
    options = _options(args, setup.slos, budget, setup.router)
    basis = resolve_basis(setup.experiment, profile_choice(args))
    make = _runner_factory(args)
    result = capacity_search(setup, basis, options, make, _Say())
    print(render_capacity(result))
    best = result.best
    if best is not None and best.scheduler is not None:
        print("vLLM:")
        model_id = args.vllm_model or setup.experiment.model.name
        for line in vllm_serve_commands(model_id, best.deployment, best.scheduler, setup.gpu_memory_utilization):
            print(f"  {line}")
    _write_outputs(args, result)
    if args.confirm:
        from layerwise.capacity_confirm import confirm_capacity

        print(confirm_capacity(result, setup, options.slos, Path(args.confirm), options.resolution, _Say()))
    return 0
