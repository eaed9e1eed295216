"""``layerwise search [EXPERIMENT]``: the fastest plan for an experiment's model, cluster and workload.

The twin scores the whole space of deployable plans (stages over contiguous layers, a TP degree
per stage, where the stages sit, the microbatch count), the event simulation re-ranks the best K,
and the answer is the event simulation's fastest plan (``sim/search``, ``docs/search.md``).
Prints the ranked table, writes the Pareto plot (``--plot``), the result (``--json``) and the best
plan (``--out``, a plan JSON that experiment files and ``layerwise run --plan`` accept as-is);
``--confirm K`` runs the top K plans that fit this machine with the executor.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from layerwise.commands.simulate import add_profile_flags, profile_choice
from layerwise.terminal import interrupts
from layerwise.terminal.arguments import positive_int
from layerwise.views.search_table import render_search
from sim.inputs import resolve_basis
from sim.search.options import add_search_flags, options_from_flags
from sim.search.plan_search import search_plans
from sim.search.result import search_result_to_dict
from topology.atomic_io import check_output_file, json_text, metadata_block, write_text_atomic
from topology.errors import LayerwiseError
from topology.experiment import load_experiment
from topology.schema.fields import cli_number

DEFAULT_EXPERIMENT = "seed-16xh100"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", nargs="?", default=DEFAULT_EXPERIMENT,
                        help=f"experiment YAML or shipped name (default: {DEFAULT_EXPERIMENT})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an experiment entry by dotted path (repeatable)")
    add_profile_flags(parser)
    add_search_flags(parser)
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write the search result here")
    parser.add_argument("--out", metavar="PLAN.json", help="write the best plan here (plan JSON)")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="Pareto plot of tokens/s against TPOT (default: search-<experiment>.png)")
    parser.add_argument("--no-plot", action="store_true", help="write no plot")
    parser.add_argument("--confirm", type=cli_number("index"), default=0, metavar="K",
                        help="run the top K plans that fit this machine with the executor (torchrun)")
    parser.add_argument("--confirm-out", metavar="DIR", default=None,
                        help="folder for the confirmation runs (default: confirm-<experiment>/)")
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help="parallel processes for the event simulations (default: all cores)")


def _say(message: str) -> None:
    interrupts.check()
    print(f"[search] {message}", file=sys.stderr, flush=True)


def _check_outputs(args: argparse.Namespace, plot_path: str | None) -> None:
    for field, value in (("--json", args.json_out), ("--out", args.out), ("--plot", plot_path)):
        if value is not None:
            check_output_file(value, field)


def run(args: argparse.Namespace) -> int:
    if args.confirm < 0:
        raise LayerwiseError("--confirm", f"must be >= 0, got {args.confirm}")
    experiment = load_experiment(args.experiment, args.overrides)
    plot_path = None if args.no_plot else (args.plot or f"search-{experiment.name}.png")
    _check_outputs(args, plot_path)
    basis = resolve_basis(experiment, profile_choice(args))
    started = time.perf_counter()
    result = search_plans(basis, options_from_flags(args), jobs=args.jobs or os.cpu_count() or 1, progress=_say)
    print(render_search(result))
    if args.json_out:
        output = {**search_result_to_dict(result), "metadata": metadata_block(result.wall_s)}
        write_text_atomic(args.json_out, json_text(output))
        print(f"wrote {args.json_out}")
    if args.out:
        write_text_atomic(args.out, result.best.plan.to_json() + "\n")
        print(f"wrote {args.out} (the best plan: `layerwise run {args.experiment} --plan {args.out}`, "
              f"or `plans: {{best: {{file: {args.out}}}}}` in an experiment file)")
    if plot_path:
        try:
            from layerwise.views.search_plot import plot_search
        except ModuleNotFoundError as exc:
            print(f"(no plot: the Pareto plot needs {exc.name!r}: pip install -e '.[report]')", file=sys.stderr)
        else:
            plot_search(result, plot_path)
            print(f"wrote {plot_path} (Pareto plot)")
    if args.confirm:
        from layerwise.confirm import confirm_search

        out_dir = Path(args.confirm_out or f"confirm-{experiment.name}")
        print(confirm_search(result, args.experiment, args.overrides, args.confirm, out_dir, _say))
    _say(f"done in {time.perf_counter() - started:.1f} s")
    return 0
