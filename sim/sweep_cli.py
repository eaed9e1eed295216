"""``layerwise sweep EXP.yaml --grid key=v1,v2 ...``: simulate the cartesian product of the grid.

Each point is a list of ``--set``-style overrides (dotted keys, YAML values); every plan of
the experiment (or only ``--plan``) is simulated at every point, in parallel over local
cores, with a progress bar on stderr. One row per (point, plan): the grid values, the plan,
the headline metrics, or the error when that point cannot run (e.g. the plan does not fit).
``--out`` takes ``.csv`` or ``.json``; without it the rows are printed as a table.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import multiprocessing
import os
import sys
from typing import Any

from sim.api import analytic_estimate, simulate_plan
from topology.atomic_io import write_text_atomic
from topology.errors import LayerwiseError
from topology.experiment import load_experiment
from topology.format import render_table

METRIC_COLUMNS = ("tokens_per_s", "step_time_s", "tpot_s", "ttft_s", "paper_tpot_s", "dominant_cost", "l2_fit",
                  "events_per_batch", "error")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="experiment YAML or shipped name")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="a dotted key and its comma-separated values (repeatable: the product is swept)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a fixed override applied at every point")
    parser.add_argument("--plan", dest="plan_name", help="only this plan")
    parser.add_argument("--out", help="write rows to FILE.csv or FILE.json")
    parser.add_argument("--jobs", type=int, default=None, help="parallel processes (default: all cores)")
    parser.add_argument("--analytic", action="store_true", help="use the closed-form twin (fast)")


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    grid = []
    for item in items:
        if "=" not in item:
            raise LayerwiseError("--grid", f"{item!r} is not key=v1,v2,...")
        key, values = item.split("=", 1)
        options = [v.strip() for v in values.split(",") if v.strip()]
        if not key.strip() or not options:
            raise LayerwiseError("--grid", f"{item!r} needs a key and at least one value")
        grid.append((key.strip(), options))
    if not grid:
        raise LayerwiseError("--grid", "give at least one --grid key=v1,v2,...")
    return grid


def grid_points(grid: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    keys = [key for key, _ in grid]
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(v for _, v in grid))]


Task = tuple[str, list[str], dict[str, str], str, bool]  # (experiment, fixed overrides, point, plan, analytic)


def run_point(task: Task) -> dict[str, Any]:
    experiment_name, fixed, point, plan_name, analytic = task
    row: dict[str, Any] = {**point, "plan": plan_name}
    row.update({column: None for column in METRIC_COLUMNS})
    try:
        experiment = load_experiment(experiment_name, [*fixed, *(f"{k}={v}" for k, v in point.items())])
        result = (analytic_estimate if analytic else simulate_plan)(experiment, plan_name)
    except LayerwiseError as exc:
        row["error"] = str(exc)
        return row
    m = result.metrics
    row.update(tokens_per_s=m.tokens_per_s, step_time_s=m.step_time_s, tpot_s=m.tpot_s, ttft_s=m.ttft_s,
               paper_tpot_s=m.paper_tpot_s, dominant_cost=m.extra["dominant_cost"],
               l2_fit=m.extra.get("l2_fit", ""), events_per_batch=m.extra["communication"]["events_per_batch"])
    return row


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)
    if done == total:
        print(file=sys.stderr)


def run_tasks(tasks: list[Task], jobs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if jobs <= 1 or len(tasks) == 1:
        for task in tasks:
            rows.append(run_point(task))
            _progress(len(rows), len(tasks))
        return rows
    with multiprocessing.get_context("fork" if sys.platform != "darwin" else "spawn").Pool(jobs) as pool:
        for row in pool.imap(run_point, tasks):  # ordered: the output does not depend on scheduling
            rows.append(row)
            _progress(len(rows), len(tasks))
    return rows


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def run(args: argparse.Namespace) -> int:
    grid = parse_grid(args.grid)
    experiment = load_experiment(args.experiment, args.overrides)  # fail fast on a bad file or --set
    if args.plan_name and args.plan_name not in experiment.plan_specs:
        raise LayerwiseError("--plan", f"no plan {args.plan_name!r} (plans: {', '.join(experiment.plan_names)})")
    if args.out and not args.out.endswith((".csv", ".json")):
        raise LayerwiseError("--out", f"{args.out!r} must end in .csv or .json")
    plans = [args.plan_name] if args.plan_name else experiment.plan_names
    tasks: list[Task] = [(args.experiment, list(args.overrides), point, plan, bool(args.analytic))
                         for point in grid_points(grid) for plan in plans]
    rows = run_tasks(tasks, args.jobs or os.cpu_count() or 1)
    if args.out:
        text = rows_to_csv(rows) if args.out.endswith(".csv") else json.dumps(rows, indent=2, sort_keys=True) + "\n"
        write_text_atomic(args.out, text)
        print(f"{len(rows)} rows written to {args.out}")
    else:
        headers = list(rows[0])
        print(render_table(headers, [["" if r[h] is None else (f"{r[h]:.6g}" if isinstance(r[h], float) else str(r[h]))
                                      for h in headers] for r in rows]))
    return 0
