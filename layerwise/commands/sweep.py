"""``layerwise sweep EXP.yaml --grid key=v1,v2 ...``: simulate the cartesian product of the grid.

Each point is a list of ``--set``-style overrides (dotted keys, YAML values); every plan of
the experiment (or only ``--plan``) is simulated at every point, in parallel over local
cores. One row per (point, plan): the grid values, the plan, the headline metrics, or the
error when that point cannot run (e.g. the plan does not fit). ``--out`` takes ``.csv`` or
``.json``; without it the rows are printed as a table, in grid order.

Before any simulation, ``--out`` must be writable and every grid value must load (each value
with the other keys at their first value), so a typo fails in a second. While it runs, stderr
shows each point as it finishes (completion order) with the time left. A sweep with failed
points writes all its rows, then says how many failed and why, and exits 1.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from layerwise.commands.simulate import add_profile_flags, profile_choice
from layerwise.terminal import interrupts
from layerwise.terminal.arguments import positive_int
from layerwise.terminal.table import render_table
from sim.inputs import ProfileChoice, resolve_basis
from sim.parallel import map_parallel
from sim.resolve import plan_inputs
from sim.simulate import estimate, simulate
from topology.atomic_io import check_output_file, json_text, write_text_atomic
from topology.errors import LayerwiseError
from topology.experiment import load_experiment

METRIC_COLUMNS = ("tokens_per_s", "step_time_s", "tpot_s", "ttft_s", "one_over_tps_s", "dominant_cost", "l2_fit",
                  "events_per_batch", "error")
FAILURES_SHOWN = 5  # failed points quoted on stderr; every one is in the rows
FAILED_POINTS_EXIT_CODE = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="experiment YAML or shipped name")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="a dotted key and its comma-separated values (repeatable: the product is swept)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a fixed override applied at every point")
    parser.add_argument("--plan", dest="plan_name", help="only this plan")
    parser.add_argument("--out", help="write rows to FILE.csv or FILE.json")
    parser.add_argument("--jobs", type=positive_int, default=None, help="parallel processes (default: all cores)")
    parser.add_argument("--analytic", action="store_true", help="use the closed-form twin (fast)")
    add_profile_flags(parser)


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    grid: list[tuple[str, list[str]]] = []
    for item in items:
        if "=" not in item:
            raise LayerwiseError("--grid", f"{item!r} is not key=v1,v2,...")
        key, values = item.split("=", 1)
        options = [v.strip() for v in values.split(",") if v.strip()]
        if not key.strip() or not options:
            raise LayerwiseError("--grid", f"{item!r} needs a key and at least one value")
        if key.strip() in (seen for seen, _ in grid):
            raise LayerwiseError("--grid", f"key {key.strip()!r} is given twice; give its values in one --grid")
        grid.append((key.strip(), options))
    if not grid:
        raise LayerwiseError("--grid", "give at least one --grid key=v1,v2,...")
    return grid


def grid_points(grid: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    keys = [key for key, _ in grid]
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(v for _, v in grid))]


def _overrides(point: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in point.items()]


def check_grid_values(experiment_name: str, fixed: list[str], grid: list[tuple[str, list[str]]],
                      choice: ProfileChoice | None = None) -> None:
    """Load the experiment at each grid value (the other keys at their first value) and resolve its
    profile: a value that cannot load (``-1``, ``abc``, a plan that does not exist, a cluster of
    another GPU than the profile's) is refused before any simulation."""
    first = {key: values[0] for key, values in grid}
    for key, values in grid:
        for value in values:
            try:
                resolve_basis(load_experiment(experiment_name, [*fixed, *_overrides({**first, key: value})]), choice)
            except LayerwiseError as exc:
                raise LayerwiseError(f"--grid {key}={value}", str(exc)) from None


@dataclass(frozen=True)
class Task:
    """One (point, plan) of the sweep; ``index`` is its place in grid order."""

    index: int
    experiment: str
    fixed: tuple[str, ...]
    point: tuple[tuple[str, str], ...]
    plan_name: str
    analytic: bool
    choice: ProfileChoice


def run_point(task: Task) -> tuple[int, dict[str, Any]]:
    point = dict(task.point)
    row: dict[str, Any] = {**point, "plan": task.plan_name}
    row.update({column: None for column in METRIC_COLUMNS})
    try:
        experiment = load_experiment(task.experiment, [*task.fixed, *_overrides(point)])
        inputs = plan_inputs(resolve_basis(experiment, task.choice), task.plan_name)
        result = estimate(inputs) if task.analytic else simulate(inputs)
    except LayerwiseError as exc:
        row["error"] = str(exc)
        return task.index, row
    m, details = result.metrics, result.metrics.simulation
    assert details is not None
    row.update(tokens_per_s=m.tokens_per_s, step_time_s=m.step_time_s, tpot_s=m.tpot_s, ttft_s=m.ttft_s,
               one_over_tps_s=1.0 / m.tokens_per_s, dominant_cost=details.breakdown.dominant,
               l2_fit=details.l2_fit, events_per_batch=details.communication.events_per_batch)
    return task.index, row


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds + 0.5), 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min {rest:02d} s"


def _point_label(row: dict[str, Any], keys: list[str]) -> str:
    return " ".join(f"{key}={row[key]}" for key in keys) + f" plan={row['plan']}"


def progress_line(done: int, total: int, elapsed_s: float, row: dict[str, Any], keys: list[str]) -> str:
    """One finished point: count, share, time so far and left (at the pace so far), and its outcome."""
    eta_s = elapsed_s / done * (total - done)
    outcome = (f"failed: {row['error']}" if row["error"] is not None
               else f"{row['tokens_per_s']:,.0f} tokens/s, step {row['step_time_s'] * 1e3:.3f} ms")
    width = len(str(total))
    return (f"[{done:>{width}}/{total}] {100 * done // total:3d}%  {_duration(elapsed_s)}, "
            f"eta {_duration(eta_s)}  {_point_label(row, keys)}: {outcome}")


def run_tasks(tasks: list[Task], jobs: int, keys: list[str]) -> list[dict[str, Any]]:
    """Every task's row, in grid order; progress on stderr in completion order."""
    rows: list[dict[str, Any] | None] = [None] * len(tasks)
    started = time.perf_counter()

    def finished(done: int, total: int, outcome: tuple[int, dict[str, Any]]) -> None:
        interrupts.check()
        index, row = outcome
        rows[index] = row
        print(progress_line(done, total, time.perf_counter() - started, row, keys), file=sys.stderr, flush=True)

    map_parallel(run_point, tasks, jobs, finished)
    return [row for row in rows if row is not None]


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def failure_report(rows: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """How many points failed and why (the first few), or nothing when none did."""
    failed = [row for row in rows if row["error"] is not None]
    if not failed:
        return []
    lines = [f"layerwise sweep: error: {len(failed)} of {len(rows)} points failed (each row holds its error):"]
    lines += [f"  {_point_label(row, keys)}: {row['error']}" for row in failed[:FAILURES_SHOWN]]
    if len(failed) > FAILURES_SHOWN:
        lines.append(f"  ... and {len(failed) - FAILURES_SHOWN} more")
    return lines


def run(args: argparse.Namespace) -> int:
    grid = parse_grid(args.grid)
    if args.out:
        if not args.out.endswith((".csv", ".json")):
            raise LayerwiseError("--out", f"{args.out!r} must end in .csv or .json")
        check_output_file(args.out, "--out")
    experiment = load_experiment(args.experiment, args.overrides)  # fail fast on a bad file or --set
    if args.plan_name and args.plan_name not in experiment.plan_specs:
        raise LayerwiseError("--plan", f"no plan {args.plan_name!r} (plans: {', '.join(experiment.plan_names)})")
    choice = profile_choice(args)
    check_grid_values(args.experiment, list(args.overrides), grid, choice)
    plans = [args.plan_name] if args.plan_name else experiment.plan_names
    points = grid_points(grid)
    tasks = [Task(index, args.experiment, tuple(args.overrides), tuple(point.items()), plan, bool(args.analytic),
                  choice)
             for index, (point, plan) in enumerate(itertools.product(points, plans))]
    keys = [key for key, _ in grid]
    rows = run_tasks(tasks, args.jobs or os.cpu_count() or 1, keys)
    if args.out:
        text = rows_to_csv(rows) if args.out.endswith(".csv") else json_text(rows)
        write_text_atomic(args.out, text)
        print(f"{len(rows)} rows written to {args.out}")
    else:
        headers = list(rows[0])
        print(render_table(headers, [["" if r[h] is None else (f"{r[h]:.6g}" if isinstance(r[h], float) else str(r[h]))
                                      for h in headers] for r in rows]))
    failures = failure_report(rows, keys)
    for line in failures:
        print(line, file=sys.stderr)
    return FAILED_POINTS_EXIT_CODE if failures else 0
