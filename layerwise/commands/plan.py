"""``layerwise plan``: show how a partitioner splits a model, as a table; ``--out`` writes JSON."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from layerwise.commands.simulate import add_profile_flags, profile_choice
from layerwise.terminal.table import render_table
from sim.inputs import resolve_basis
from sim.search.options import ARG_OF_FLAG, add_search_flags
from sim.search.plan_search import optimal_partitioner
from topology.atomic_io import check_output_file, check_output_folder, write_text_atomic
from topology.errors import LayerwiseError
from topology.experiment import Experiment, build_plan, experiment_from_dict, load_experiment
from topology.partition import OPTIMAL, PARTITIONERS
from topology.plan import Plan
from topology.units import format_bytes
from topology.workload import check_positive_int

DEFAULT_EXPERIMENT = "seed-16xh100"
PARTITIONER_FLAGS = {"tp": ("tp-pp",), "pp": ("tp-pp",), "capacity": ("cache-fit",), "counts": ("cache-fit",),
                     "microbatches": ("tp-pp", "cache-fit", "min-max-bytes", "optimal")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", nargs="?", help="experiment YAML (default: the seed's, both plans)")
    parser.add_argument("--model", help="model preset (with --cluster and --partitioner: plan without a file)")
    parser.add_argument("--cluster", help="cluster preset")
    parser.add_argument("--partitioner", choices=PARTITIONERS)
    parser.add_argument("--tp", type=int, help="tp-pp: tensor-parallel degree")
    parser.add_argument("--pp", type=int, help="tp-pp: pipeline stages")
    parser.add_argument("--capacity", help="cache-fit: l2, sram, l2+sram or a byte count (default l2)")
    parser.add_argument("--counts", help="cache-fit: weights, weights+kv or weights+kv+activations")
    parser.add_argument("--microbatches", type=int)
    parser.add_argument("--phase", choices=("prefill", "decode"), default=None)
    parser.add_argument("--batch", type=int, help="batch size (default: the seed's 128)")
    parser.add_argument("--context", type=int, help="context / prompt length (default: the seed's 10000)")
    parser.add_argument("--plan", dest="plan_name", help="only this plan of the experiment")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", help="write the plan JSON here (a folder when several plans)")
    add_profile_flags(parser)  # what prices the plans of --partitioner optimal
    add_search_flags(parser, microbatches=False)  # --partitioner optimal's options


def _check_flags(args: argparse.Namespace) -> None:
    """Flags that would be ignored are refused: a partitioner's arguments need that partitioner."""
    for arg in _search_spec(args):
        if args.partitioner != OPTIMAL:
            flag = next(f for f, a in ARG_OF_FLAG.items() if a == arg)
            raise LayerwiseError(flag, f"is an option of the plan search: give --partitioner {OPTIMAL} with --model "
                                       f"and --cluster (or `layerwise search EXPERIMENT {flag} ...`)")
    for flag in ("batch", "context", "tp", "pp", "microbatches"):
        if getattr(args, flag) is not None:
            check_positive_int(f"--{flag}", getattr(args, flag))
    for flag, partitioners in PARTITIONER_FLAGS.items():
        if getattr(args, flag) is None:
            continue
        if args.partitioner is None:
            raise LayerwiseError(
                f"--{flag}", f"applies to an ad-hoc plan: give --partitioner {partitioners[0]} with --model and "
                             f"--cluster (to change an experiment's plan: --set plans.NAME.{flag}=VALUE)")
        if args.partitioner not in partitioners:
            raise LayerwiseError(f"--{flag}", f"is not an argument of --partitioner {args.partitioner} "
                                              f"(it applies to {', '.join(partitioners)})")


def _experiment(args: argparse.Namespace) -> Experiment:
    ad_hoc = any(v is not None for v in (args.model, args.cluster, args.partitioner))
    if ad_hoc and args.experiment:
        raise LayerwiseError("experiment", "give an experiment file or --model/--cluster/--partitioner, not both")
    _check_flags(args)
    if not ad_hoc:
        overrides = list(args.overrides)
        for key, value in (("workload.batch_size", args.batch), ("workload.context_len", args.context),
                           ("workload.prompt_len", args.context), ("workload.phase", args.phase)):
            if value is not None:
                overrides.append(f"{key}={value}")
        return load_experiment(args.experiment or DEFAULT_EXPERIMENT, overrides)
    for key in ("model", "cluster", "partitioner"):
        if getattr(args, key) is None:
            raise LayerwiseError(f"--{key}", "missing (ad-hoc plans need --model, --cluster and --partitioner)")
    spec: dict[str, object] = {"partitioner": args.partitioner}
    if args.partitioner == "tp-pp":
        spec.update(tp=args.tp if args.tp is not None else 1, pp=args.pp if args.pp is not None else 1)
    elif args.partitioner == "cache-fit":
        spec.update(capacity=args.capacity or "l2", counts=args.counts or "weights")
    if args.microbatches is not None:
        spec["microbatches"] = args.microbatches
    if args.partitioner == OPTIMAL:
        spec.update(_search_spec(args))
    context = args.context if args.context is not None else 10000
    raw = {
        "name": "ad-hoc",
        "model": args.model,
        "cluster": args.cluster,
        "workload": {"phase": args.phase or "decode", "batch_size": args.batch if args.batch is not None else 128,
                     "prompt_len": context, "context_len": context},
        "plans": {args.partitioner: spec},
    }
    return experiment_from_dict(raw, default_name="ad-hoc")


def _fit_cell(num_bytes: int, capacity: int) -> str:
    if num_bytes <= capacity:
        return f"fits ({format_bytes(capacity - num_bytes)} spare)"
    return f"over by {format_bytes(num_bytes - capacity)}"


def _search_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The search flags given (not left at their defaults), as an optimal plan's arguments."""
    defaults = {"top": 10, "family": "all"}
    spec: dict[str, Any] = {}
    for flag, arg in ARG_OF_FLAG.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if arg != "microbatches" and value is not None and value != defaults.get(arg):
            spec[arg] = value
    return spec


def _say(message: str) -> None:
    print(f"({message})", file=sys.stderr, flush=True)


def render_plan(name: str, plan: Plan) -> str:
    headers = ["stage", "layers", "devices", "tp", "weights/dev", "kv/dev", "act/dev",
               "total vs HBM", "weights vs L2 (usable)", "weights vs SRAM"]
    rows = []
    for s in plan.stages:
        fp = s.footprint
        devices = s.devices[0] if len(s.devices) == 1 else f"{s.devices[0]}..{s.devices[-1]}"
        rows.append([
            str(s.index), f"{s.layer_start}-{s.layer_stop - 1}", devices, str(s.tp_degree),
            format_bytes(fp.weights_bytes), format_bytes(fp.kv_cache_bytes), format_bytes(fp.activation_bytes),
            f"{format_bytes(fp.total_bytes)} / {format_bytes(plan.device_hbm_capacity_bytes)}",
            _fit_cell(fp.weights_bytes, plan.device_l2_usable_bytes),
            _fit_cell(fp.weights_bytes, plan.device_sram_bytes),
        ])
    header = (f"plan {name!r}: {plan.describe()} on {plan.cluster_name} "
              f"({plan.num_devices} devices, model {plan.model.name}, partitioner {plan.partitioner})")
    lines = [header, render_table(headers, rows)]
    if plan.fit_capacity_bytes is not None:
        lines.append(f"cache-fit capacity C = {format_bytes(plan.fit_capacity_bytes)} counting {plan.fit_counts}")
    shown = plan.notes
    if len(shown) > 4:
        shown = (*shown[:3], f"... {len(plan.notes) - 3} more notes in the JSON")
    lines += [f"note: {note}" for note in shown]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:
        # the reader went away (`layerwise plan | head`): stop quietly, and keep the
        # interpreter's final flush of stdout from raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


def _run(args: argparse.Namespace) -> int:
    experiment = _experiment(args)
    names = [args.plan_name] if args.plan_name else experiment.plan_names
    one_file = args.out is not None and len(names) == 1 and args.out.endswith(".json")
    if args.out is not None:
        (check_output_file if one_file else check_output_folder)(args.out, "--out")
    w = experiment.workload
    print(f"experiment {experiment.name}: {experiment.model.name} on {experiment.cluster.name}, "
          f"{w.phase} batch {w.batch_size}, context {w.context_len}, "
          f"{format_bytes(experiment.model.weight_bytes_per_layer)} of weights per layer "
          f"({experiment.model.params_per_layer:,} parameters)")
    searched = [name for name in names if experiment.plan_specs.get(name, {}).get("partitioner") == OPTIMAL]
    optimizer = None
    if searched:  # only an optimal plan needs the simulator (and a profile)
        basis = resolve_basis(experiment, profile_choice(args))
        print(f"cost model of the plan search: {basis.profile_label}")
        optimizer = optimal_partitioner(basis, jobs=1, progress=_say)
    plans = {name: build_plan(experiment, name, optimizer) for name in names}
    for name, plan in plans.items():
        print()
        print(render_plan(name, plan))
    if args.out:
        out = Path(args.out)
        if one_file:
            write_text_atomic(out, next(iter(plans.values())).to_json() + "\n")
            print(f"\nwrote {out}")
        else:
            for name, plan in plans.items():
                target = out / f"{name}.plan.json"
                write_text_atomic(target, plan.to_json() + "\n")
                print(f"\nwrote {target}")
    return 0
