"""``layerwise simulate``: simulate an experiment's plans (no arguments: the seed's 16 x H100 question).

``--json OUT`` writes the result in the shared schema: one plan (one in the file, or ``--plan``)
writes one RunResult object; several plans write a JSON list of RunResult objects.
``--trace OUT`` writes a Chrome/Perfetto trace; with several plans, one file per plan named
``OUT`` with the plan name before the suffix (``trace.baseline.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sim.api import analytic_estimate, simulate_plan
from sim.main_job import main_rows, render_main
from sim.table import Row, render_rows
from topology.atomic_io import write_text_atomic
from topology.errors import LayerwiseError
from topology.experiment import load_experiment
from topology.profile import load_profile
from topology.results import RunResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", nargs="?", help="experiment YAML or shipped name (default: the main job)")
    parser.add_argument("--plan", dest="plan_name", help="only this plan of the experiment")
    parser.add_argument("--json", dest="json_out", help="write results (shared schema) here")
    parser.add_argument("--trace", dest="trace_out", help="write a Chrome/Perfetto trace here")
    parser.add_argument("--profile", help="hardware profile JSON (overrides the experiment's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an experiment entry by dotted path (repeatable)")
    parser.add_argument("--analytic", action="store_true", help="the closed-form twin instead of events")
    parser.add_argument("--jobs", type=int, default=None, help="parallel processes for the main job")


def trace_path_for(trace_out: str, plan_name: str, several: bool) -> str:
    if not several:
        return trace_out
    path = Path(trace_out)
    return str(path.with_name(f"{path.stem}.{plan_name}{path.suffix or '.json'}"))


def run(args: argparse.Namespace) -> int:
    if args.experiment is None and not (args.overrides or args.plan_name or args.profile or args.trace_out):
        started = time.perf_counter()
        main_table, main_claims = main_rows(args.jobs)
        print(render_main(main_table, main_claims))
        if args.json_out:
            payload = [row.result.to_dict() for row in main_table if row.result is not None]
            write_text_atomic(args.json_out, json.dumps(payload, indent=2, sort_keys=True) + "\n")
        print(f"\n({len(main_table)} simulations in {time.perf_counter() - started:.2f} s wall)")
        return 0
    experiment = load_experiment(args.experiment or "seed-16xh100", args.overrides)
    profile = load_profile(args.profile) if args.profile else None
    names = [args.plan_name] if args.plan_name else experiment.plan_names
    if args.plan_name and args.plan_name not in experiment.plan_specs:
        raise LayerwiseError("--plan", f"no plan {args.plan_name!r} (plans: {', '.join(experiment.plan_names)})")
    estimate = analytic_estimate if args.analytic else simulate_plan
    results: list[RunResult] = []
    rows: list[Row] = []
    claims = experiment.paper_claims_tokens_per_s
    for name in names:
        trace = trace_path_for(args.trace_out, name, len(names) > 1) if args.trace_out else None
        try:
            result = estimate(experiment, name, profile=profile, trace_path=trace)
        except LayerwiseError as exc:
            if len(names) == 1:
                raise
            rows.append(Row(experiment.model.name, experiment.cluster.name, name, name, None, claims.get(name),
                            str(exc)))  # e.g. a plan that does not fit HBM: say so, simulate the others
            continue
        results.append(result)
        rows.append(Row(experiment.model.name, experiment.cluster.name, name,
                        f"{name} ({result.metrics.extra['plan']})", result, claims.get(name)))
    print(render_rows(rows))
    if not results:
        raise LayerwiseError("plans", "no plan of the experiment can run (see the table)")
    if args.json_out:
        one_or_list = results[0].to_dict() if len(names) == 1 else [r.to_dict() for r in results]
        write_text_atomic(args.json_out, json.dumps(one_or_list, indent=2, sort_keys=True) + "\n")
    return 0
