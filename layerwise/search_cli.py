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
import json
import os
import sys
import time
from pathlib import Path

from layerwise.terminal import interrupts
from layerwise.terminal.arguments import positive_int
from layerwise.terminal.table import render_table
from sim.search.partitioner import options_of
from sim.search.result import SearchOptions, SearchResult, search_result_to_dict
from sim.search.run import search_plans
from topology.accuracy import COMPONENT_WORDS
from topology.atomic_io import check_output_file, write_text_atomic
from topology.errors import LayerwiseError
from topology.experiment import load_experiment
from topology.profile import load_profile
from topology.units import format_seconds

DEFAULT_EXPERIMENT = "seed-16xh100"
COST_WORDS = {"compute": "arithmetic", "weights": "weights", "kv_cache": "KV cache", "activations": "activations",
              "launch": "launches", "communication": "communication", "bubble": "bubbles"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", nargs="?", default=DEFAULT_EXPERIMENT,
                        help=f"experiment YAML or shipped name (default: {DEFAULT_EXPERIMENT})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an experiment entry by dotted path (repeatable)")
    parser.add_argument("--profile", help="hardware profile JSON (overrides the experiment's)")
    parser.add_argument("--force-profile", action="store_true",
                        help="apply a profile measured on another GPU than the cluster's")
    parser.add_argument("--top", type=int, default=10, metavar="K", help="finalists the events re-rank (default 10)")
    parser.add_argument("--gpus", type=int, default=None, metavar="N", help="search on the first N GPUs only")
    parser.add_argument("--max-tpot-ms", type=float, default=None, help="decode: TPOT limit")
    parser.add_argument("--max-ttft-ms", type=float, default=None, help="prefill: mean TTFT limit")
    parser.add_argument("--family", choices=("all", "tp-pp", "layer-wise"), default="all",
                        help="search one family only (default: the whole space)")
    parser.add_argument("--microbatches", type=int, default=None, help="fix the microbatch count")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write the search result here")
    parser.add_argument("--out", metavar="PLAN.json", help="write the best plan here (plan JSON)")
    parser.add_argument("--plot", metavar="PNG", default=None,
                        help="Pareto plot of tokens/s against TPOT (default: search-<experiment>.png)")
    parser.add_argument("--no-plot", action="store_true", help="write no plot")
    parser.add_argument("--confirm", type=int, default=0, metavar="K",
                        help="run the top K plans that fit this machine with the executor (torchrun)")
    parser.add_argument("--confirm-out", metavar="DIR", default=None,
                        help="folder for the confirmation runs (default: confirm-<experiment>/)")
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help="parallel processes for the event simulations (default: all cores)")


def _say(message: str) -> None:
    interrupts.check()
    print(f"[search] {message}", file=sys.stderr, flush=True)


def _options(args: argparse.Namespace) -> SearchOptions:
    return options_of({"top": args.top, "gpus": args.gpus, "max_tpot_ms": args.max_tpot_ms,
                       "max_ttft_ms": args.max_ttft_ms, "family": args.family, "microbatches": args.microbatches})


def _stage_text(result: SearchResult) -> str:
    best = result.best
    parts = []
    for stage in best.plan.stages:
        devices = stage.devices[0] if len(stage.devices) == 1 else f"{stage.devices[0]}-{stage.devices[-1]}"
        parts.append(f"layers {stage.layer_start}-{stage.layer_stop - 1} on {devices} (TP{stage.tp_degree})")
    return "; ".join(parts)


def _band_cell(result: SearchResult, unvalidated: tuple[str, ...]) -> str:
    if result.band is None:
        return "none"
    return f"±{result.band.mape:.1%}" + (" (partial)" if unvalidated else "")


def render_search(result: SearchResult) -> str:
    best = result.best.prediction.tokens_per_s
    decode = result.phase == "decode"
    headers = ["#", "plan", "GPUs", "tokens/s", "per GPU", "TPOT" if decode else "TTFT", "gap", "dominant cost",
               "band", "unvalidated", "origin"]
    rows = []
    for rank, c in enumerate(result.ranked, start=1):
        p = c.prediction
        dominant = p.dominant_cost
        share = p.breakdown_s.get(dominant, 0.0) / p.step_s if dominant else 0.0
        ties = f" (+{c.ties} ties)" if c.ties else ""
        rows.append([str(rank), c.layout.describe() + ties, str(c.gpus), f"{p.tokens_per_s:,.0f}",
                     f"{c.tokens_per_s_per_gpu:,.0f}", format_seconds(p.tpot_s if decode else p.ttft_s),
                     "best" if rank == 1 else f"-{1 - p.tokens_per_s / best:.1%}",
                     f"{COST_WORDS.get(dominant or '', dominant)} {share:.0%}" if dominant else "-",
                     _band_cell(result, c.unvalidated),
                     ", ".join(COMPONENT_WORDS[u] for u in c.unvalidated) or "-", c.origin])
    o = result.options
    limits = [f"GPUs <= {o.gpus}"] if o.gpus else []
    limits += [f"TPOT <= {o.max_tpot_s * 1e3:g} ms"] if o.max_tpot_s is not None else []
    limits += [f"TTFT <= {o.max_ttft_s * 1e3:g} ms"] if o.max_ttft_s is not None else []
    header = (f"search: {result.model} on {result.cluster}, {result.phase}, {result.parameters}"
              f"{', ' + ', '.join(limits) if limits else ''}. Space: {result.space_size:,} layouts "
              f"(family {o.family}; HBM fit checked as the DP goes); the twin expanded {result.states_visited:,} DP "
              f"states, the events ran {len(result.ranked) + len(result.over_limits)} finalists, "
              f"{result.wall_s:.1f} s.")
    b = result.best
    p = b.prediction
    latency = f"TPOT {format_seconds(p.tpot_s)}" if decode else f"TTFT {format_seconds(p.ttft_s)}"
    lines = [header, "", render_table(headers, rows), "",
             f"BEST: {b.layout.describe()} on {b.gpus} GPU{'s' if b.gpus > 1 else ''}: {p.tokens_per_s:,.0f} tokens/s "
             f"({b.tokens_per_s_per_gpu:,.0f} per GPU), {latency}. {_stage_text(result)}.",
             f"UNCERTAINTY: {result.resolution}"]
    if result.over_limits:
        lines.append(f"({len(result.over_limits)} finalists were over the limits under the events: "
                     + ", ".join(c.layout.describe() for c in result.over_limits) + ")")
    return "\n".join(lines)


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
    profile = load_profile(args.profile) if args.profile else (
        load_profile(experiment.profile_path) if experiment.profile_path else None)
    started = time.perf_counter()
    result = search_plans(experiment, profile, _options(args), jobs=args.jobs or os.cpu_count() or 1,
                          progress=_say, force_profile=args.force_profile)
    print(render_search(result))
    if args.json_out:
        write_text_atomic(args.json_out, json.dumps(search_result_to_dict(result), indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json_out}")
    if args.out:
        write_text_atomic(args.out, result.best.plan.to_json() + "\n")
        print(f"wrote {args.out} (the best plan: `layerwise run {args.experiment} --plan {args.out}`, "
              f"or `plans: {{best: {{file: {args.out}}}}}` in an experiment file)")
    if plot_path:
        try:
            from layerwise.search_plot import plot_search
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
