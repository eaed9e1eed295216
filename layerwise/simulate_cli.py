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
import json
import os
import sys
import time
from pathlib import Path

from layerwise.question.main import DEFAULT_PROFILE, main_job_json, run_main_job
from layerwise.results_table import Row, render_rows
from layerwise.terminal.arguments import positive_int
from layerwise.terminal.progress import ProgressLine
from sim.api import analytic_estimate, simulate_plan
from topology.accuracy import describe_band, plan_components, regime_of, unvalidated_components
from topology.atomic_io import check_output_file, write_text_atomic
from topology.errors import LayerwiseError
from topology.experiment import Experiment, load_experiment
from topology.profile import HardwareProfile, band_for_cluster, load_profile
from topology.results import RunResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", nargs="?", help="experiment YAML or shipped name (default: the main job)")
    parser.add_argument("--plan", dest="plan_name", help="only this plan of the experiment")
    parser.add_argument("--json", dest="json_out", help="write results (shared schema) here")
    parser.add_argument("--trace", dest="trace_out", help="write a Chrome/Perfetto trace here (one per plan)")
    parser.add_argument("--profile", help="hardware profile JSON or shipped name (overrides the experiment's; "
                                          f"the main job's default: {DEFAULT_PROFILE})")
    parser.add_argument("--datasheet", action="store_true", help="no profile: the GPU and link data files alone")
    parser.add_argument("--force-profile", action="store_true",
                        help="apply a profile measured on another GPU than the cluster's")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an experiment entry by dotted path (repeatable)")
    parser.add_argument("--analytic", action="store_true", help="the closed-form twin instead of events")
    parser.add_argument("--jobs", type=positive_int, default=None, help="parallel processes for the main job")


def trace_path_for(trace_out: str, plan_name: str, several: bool) -> str:
    if not several:
        return trace_out
    path = Path(trace_out)
    return str(path.with_name(f"{path.stem}.{plan_name}{path.suffix or '.json'}"))


def _profile(args: argparse.Namespace, default: str | None) -> tuple[HardwareProfile | None, str]:
    if args.datasheet and args.profile:
        raise LayerwiseError("--datasheet", "give --datasheet or --profile, not both")
    name = None if args.datasheet else (args.profile or default)
    if name is None:
        return None, "datasheet parameters (no profile)"
    profile = load_profile(name)
    return profile, f"{profile.source} profile of {profile.gpu_name} ({name})"


def run(args: argparse.Namespace) -> int:
    if args.json_out:
        check_output_file(args.json_out, "--json")
    if args.experiment is None:
        return _main_job(args)
    experiment = load_experiment(args.experiment, args.overrides)
    names = [args.plan_name] if args.plan_name else experiment.plan_names
    if args.plan_name and args.plan_name not in experiment.plan_specs:
        raise LayerwiseError("--plan", f"no plan {args.plan_name!r} (plans: {', '.join(experiment.plan_names)})")
    traces = {name: trace_path_for(args.trace_out, name, len(names) > 1) for name in names} if args.trace_out else {}
    for path in traces.values():
        check_output_file(path, "--trace")
    if traces and args.analytic:
        raise LayerwiseError("--trace", "the closed-form twin (--analytic) has no timeline to trace")
    profile, _ = _profile(args, None)
    results, rows = _simulate_all(args, experiment, names, profile, traces)
    print(render_rows(rows))
    if not results:
        raise LayerwiseError("plans", "no plan of the experiment can run (see the table)")
    for name, path in traces.items():
        if any(r.plan_name == name for r in results):
            print(f"wrote {path} (trace of {name}: open in ui.perfetto.dev)")
    if args.json_out:
        one_or_list = results[0].to_dict() if len(names) == 1 else [r.to_dict() for r in results]
        write_text_atomic(args.json_out, json.dumps(one_or_list, indent=2, sort_keys=True) + "\n")
        print(f"wrote {args.json_out}")
    return 0


def _main_job(args: argparse.Namespace) -> int:
    for flag, value in (("--plan", args.plan_name), ("--trace", args.trace_out)):
        if value:
            raise LayerwiseError(flag, "needs an experiment: the main job runs four plan searches "
                                       "(e.g. `layerwise simulate seed-16xh100 --trace t.json`)")
    if args.force_profile:
        raise LayerwiseError("--force-profile", "the main job simulates H100 clusters: give an H100 profile")
    profile, label = _profile(args, DEFAULT_PROFILE)
    text, results = run_main_job(profile, label, tuple(args.overrides), args.jobs or os.cpu_count() or 1,
                                 twin_only=args.analytic)
    print(text)
    if args.json_out:
        main_job_json(results, args.json_out)
        print(f"wrote {args.json_out}")
    return 0


def _simulate_all(args: argparse.Namespace, experiment: Experiment, names: list[str],
                  profile: HardwareProfile | None, traces: dict[str, str]) -> tuple[list[RunResult], list[Row]]:
    claims, events = experiment.paper_claims_tokens_per_s, experiment.paper_claims_events_per_batch
    results: list[RunResult] = []
    rows: list[Row] = []
    started = time.perf_counter()
    for name in names:
        try:
            if args.analytic:
                result = analytic_estimate(experiment, name, profile=profile, force_profile=args.force_profile)
            else:
                progress = ProgressLine(f"simulate {name}", experiment.workload.iterations, "iterations")
                result = simulate_plan(experiment, name, profile=profile, trace_path=traces.get(name),
                                       force_profile=args.force_profile, progress=progress.update)
        except LayerwiseError as exc:
            if len(names) == 1:
                raise
            rows.append(Row(experiment.model.name, experiment.cluster.name, name, name, None, claims.get(name),
                            str(exc), events.get(name)))  # e.g. a plan that does not fit HBM: say so
            continue
        results.append(result)
        rows.append(Row(experiment.model.name, experiment.cluster.name, name,
                        f"{name} ({result.metrics.plan_label})", result, claims.get(name), None,
                        events.get(name), _rests_on(experiment, result, profile)))
        if time.perf_counter() - started > 2.0:
            print(f"[simulate] {len(results)}/{len(names)} plans done", file=sys.stderr, flush=True)
    return results, rows


def _rests_on(experiment: Experiment, result: RunResult, profile: HardwareProfile | None) -> str:
    from topology.plan import plan_from_dict

    w = experiment.workload
    band = band_for_cluster(profile, experiment.cluster, regime_of(w.phase, w.cuda_graphs))
    components = plan_components(plan_from_dict(result.plan), experiment.cluster, w.phase == "decode")
    return describe_band(band, unvalidated_components(components, band))
