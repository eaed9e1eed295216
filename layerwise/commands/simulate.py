"""``layerwise simulate [EXPERIMENT]``: simulate an experiment's plans; no experiment: the main job.

The main job (:mod:`layerwise.question`) takes ``--set`` (applied to every case), ``--profile`` /
``--datasheet``, ``--analytic``, ``--json`` and ``--jobs``; ``--plan`` and ``--trace`` need an
experiment and say so. With an experiment, ``--json OUT`` writes one RunResult (one plan) or a
list (several), and ``--trace OUT`` a Chrome/Perfetto trace per plan (``OUT`` itself for one
plan, ``OUT`` with the plan name before the suffix for several), each path printed as written.
A long simulation (a growing context) shows its progress; Ctrl-C stops it with one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from layerwise.commands.simulate_serving import serve, trace_path_for
from layerwise.question.main import main_job_json, run_main_job
from layerwise.terminal.arguments import positive_int
from layerwise.terminal.progress import ProgressLine
from layerwise.views.results_table import Row, render_rows
from serving.setup import experiment_is_serving
from sim.inputs import Basis, ProfileChoice, resolve_basis
from sim.resolve import plan_inputs
from sim.simulate import estimate, simulate
from sim.work import MAX_STAGE_PASSES
from topology.accuracy import describe_band
from topology.atomic_io import check_output_file, json_text, write_text_atomic
from topology.errors import LayerwiseError
from topology.experiment import load_experiment
from topology.plan import Plan
from topology.results import RunResult
from topology.schema.fields import cli_number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", nargs="?", help="experiment YAML or shipped name (default: the main job)")
    parser.add_argument("--plan", dest="plan_name", help="only this plan of the experiment")
    parser.add_argument("--json", dest="json_out", help="write results (shared schema) here")
    parser.add_argument("--trace", dest="trace_out", help="write a Chrome/Perfetto trace here (one per plan)")
    parser.add_argument("--plot", dest="plot_out", metavar="PNG",
                        help="serving experiments: CDFs of TTFT and TPOT per plan, with the SLO bounds")
    add_profile_flags(parser)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an experiment entry by dotted path (repeatable)")
    parser.add_argument("--analytic", action="store_true", help="the closed-form twin instead of events")
    parser.add_argument("--jobs", type=positive_int, default=None, help="parallel processes for the main job")
    parser.add_argument("--max-passes", type=cli_number("count"), default=MAX_STAGE_PASSES,
                        help=f"refuse an event simulation of more stage passes (default {MAX_STAGE_PASSES:.0e})")


def add_profile_flags(parser: argparse.ArgumentParser) -> None:
    """``--profile``, ``--datasheet``, ``--force-profile``: the same in every command that simulates."""
    parser.add_argument("--profile", help="hardware profile JSON or shipped name (overrides the experiment's; "
                                          "default: the shipped profile of the cluster's GPU, if any)")
    parser.add_argument("--datasheet", action="store_true", help="no profile: the GPU and link data files alone")
    parser.add_argument("--force-profile", action="store_true",
                        help="apply a profile measured on another GPU than the cluster's")


def profile_choice(args: argparse.Namespace) -> ProfileChoice:
    """``--profile``, ``--datasheet`` and ``--force-profile`` as the resolver takes them."""
    return ProfileChoice(path=args.profile, datasheet=bool(args.datasheet), force=bool(args.force_profile))


def run(args: argparse.Namespace) -> int:
    if args.json_out:
        check_output_file(args.json_out, "--json")
    if args.experiment is None:
        return _main_job(args)
    if experiment_is_serving(args.experiment, args.overrides):
        return serve(args, profile_choice(args))
    if args.plot_out:
        raise LayerwiseError("--plot", "draws serving latency CDFs: give a serving experiment (workload.phase: serve)")
    experiment = load_experiment(args.experiment, args.overrides)
    names = [args.plan_name] if args.plan_name else experiment.plan_names
    if args.plan_name and args.plan_name not in experiment.plan_specs:
        raise LayerwiseError("--plan", f"no plan {args.plan_name!r} (plans: {', '.join(experiment.plan_names)})")
    traces = {name: trace_path_for(args.trace_out, name, len(names) > 1) for name in names} if args.trace_out else {}
    for path in traces.values():
        check_output_file(path, "--trace")
    if traces and args.analytic:
        raise LayerwiseError("--trace", "the closed-form twin (--analytic) has no timeline to trace")
    basis = resolve_basis(experiment, profile_choice(args))
    results, rows = _simulate_all(args, basis, names, traces)
    print(f"cost model: {basis.profile_label}")
    print(render_rows(rows))
    if not results:
        raise LayerwiseError("plans", "no plan of the experiment can run (see the table)")
    for name, path in traces.items():
        if any(r.plan_name == name for r in results):
            print(f"wrote {path} (trace of {name}: open in ui.perfetto.dev)")
    if args.json_out:
        one_or_list = results[0].to_dict() if len(names) == 1 else [r.to_dict() for r in results]
        write_text_atomic(args.json_out, json_text(one_or_list))
        print(f"wrote {args.json_out}")
    return 0


def _main_job(args: argparse.Namespace) -> int:
    for flag, value in (("--plan", args.plan_name), ("--trace", args.trace_out), ("--plot", args.plot_out)):
        if value:
            raise LayerwiseError(flag, "needs an experiment: the main job runs four plan searches "
                                       "(e.g. `layerwise simulate seed-16xh100 --trace t.json`)")
    if args.force_profile:
        raise LayerwiseError("--force-profile", "the main job simulates H100 clusters: give an H100 profile")
    text, results = run_main_job(profile_choice(args), tuple(args.overrides), args.jobs or os.cpu_count() or 1,
                                 twin_only=args.analytic)
    print(text)
    if args.json_out:
        main_job_json(results, args.json_out)
        print(f"wrote {args.json_out}")
    return 0


def _simulate_all(args: argparse.Namespace, basis: Basis, names: list[str],
                  traces: dict[str, str]) -> tuple[list[RunResult], list[Row]]:
    experiment = basis.experiment
    claims, events = experiment.paper_claims_tokens_per_s, experiment.paper_claims_events_per_batch
    results: list[RunResult] = []
    rows: list[Row] = []
    started = time.perf_counter()
    for name in names:
        try:
            inputs = plan_inputs(basis, name, jobs=args.jobs or os.cpu_count() or 1)
            if args.analytic:
                result = estimate(inputs)
            else:
                progress = ProgressLine(f"simulate {name}", experiment.workload.iterations, "iterations")
                result = simulate(inputs, trace_path=traces.get(name), progress=progress.update,
                                  max_passes=args.max_passes)
        except LayerwiseError as exc:
            if len(names) == 1:
                raise
            rows.append(Row(experiment.model.name, experiment.cluster.name, name, name, None, claims.get(name),
                            str(exc), events.get(name)))  # e.g. a plan that does not fit HBM: say so
            continue
        results.append(result)
        rows.append(Row(experiment.model.name, experiment.cluster.name, name,
                        f"{name} ({result.metrics.plan_label})", result, claims.get(name), None,
                        events.get(name), _rests_on(basis, inputs.plan)))
        if time.perf_counter() - started > 2.0:
            print(f"[simulate] {len(results)}/{len(names)} plans done", file=sys.stderr, flush=True)
    return results, rows


def _rests_on(basis: Basis, plan: Plan) -> str:
    found, unvalidated = basis.band_for(plan)
    text = describe_band(found.band, unvalidated)
    return f"{text} ({found.note})" if found.note else text
