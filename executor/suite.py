"""``python -m executor.suite SUITE.yaml --out DIR``: run a list of executor entries one after another.

A suite file::

    name: gpu-single
    description: ...
    entries:
      - name: seed16-b128-c2048-mb1         # the result file is DIR/<name>.json
        experiment: experiments/seed-x1.yaml  # relative to the suite file
        plan: tp1
        set: [workload.batch_size=128, workload.context_len=2048]
        modes: [graph, eager]               # optional: one entry per mode, suffixed -graph / -eager
        fill: seeded                        # optional (decode KV fill)
        sdpa_backend: flash                 # optional (auto, flash, efficient, cudnn, math, matmul)

Each entry runs under torchrun for its plan's device count on this host. A failing entry is
recorded (``DIR/<name>.error.txt`` and the summary) and the suite goes on. ``DIR/suite-summary.json``
is rewritten after every entry; ``--skip-existing`` resumes an interrupted suite.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from executor.launch import STARTUP_MARGIN_S, check_before_launch, run_torchrun, torchrun_command
from executor.worker import FILLS, SDPA_BACKENDS, choose_backend, default_timeout_s
from topology.atomic_io import write_json_atomic, write_text_atomic
from topology.datafile import parse_yaml
from topology.errors import LayerwiseError
from topology.experiment import build_plan, load_experiment
from topology.results import load_result
from topology.schema.fields import cli_number

MODES = {"graph": "workload.cuda_graphs=true", "eager": "workload.cuda_graphs=false"}
TAIL_LINES_KEPT = 60
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class SuiteEntry:
    name: str
    experiment: str  # absolute path
    plan: str | None
    overrides: tuple[str, ...]
    fill: str = "seeded"
    sdpa_backend: str = "auto"
    trace: bool = False  # also write a torch.profiler trace beside the result (<name>.pt.trace.json)


@dataclass
class EntryOutcome:
    name: str
    status: str  # "ok", "failed", "skipped"
    elapsed_s: float
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    output_tail: tuple[str, ...] = ()  # the run's last output lines, when it failed


def load_suite(path: str | Path) -> tuple[str, list[SuiteEntry]]:
    suite_path = Path(path)
    if not suite_path.is_file():
        raise LayerwiseError("suite", f"no such file: {str(suite_path)!r}")
    raw = parse_yaml(suite_path.read_text(encoding="utf-8"), str(suite_path))
    entries_raw = raw.get("entries")
    if not isinstance(entries_raw, list) or not entries_raw:
        raise LayerwiseError("suite.entries", "must be a non-empty list")
    entries: list[SuiteEntry] = []
    for index, item in enumerate(entries_raw):
        where = f"suite.entries[{index}]"
        if not isinstance(item, dict) or "name" not in item or "experiment" not in item:
            raise LayerwiseError(where, "needs name: and experiment:")
        known = {"name", "experiment", "plan", "set", "modes", "fill", "sdpa_backend", "trace"}
        unknown = sorted(set(item) - known)
        if unknown:
            raise LayerwiseError(f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(known))})")
        experiment = Path(str(item["experiment"]))
        if not experiment.is_absolute():
            experiment = suite_path.resolve().parent / experiment
        overrides = tuple(str(o) for o in item.get("set", []))
        fill, sdpa_backend = str(item.get("fill", "seeded")), str(item.get("sdpa_backend", "auto"))
        if fill not in FILLS:
            raise LayerwiseError(f"{where}.fill", f"{fill!r} is not one of {list(FILLS)}")
        if sdpa_backend not in ("auto", *SDPA_BACKENDS, "matmul"):
            raise LayerwiseError(f"{where}.sdpa_backend",
                                 f"{sdpa_backend!r} is not one of {['auto', *SDPA_BACKENDS, 'matmul']}")
        modes = item.get("modes") or [None]
        for mode in modes:
            if mode is not None and mode not in MODES:
                raise LayerwiseError(f"{where}.modes", f"{mode!r} is not one of {sorted(MODES)}")
            name = str(item["name"]) + (f"-{mode}" if mode else "")
            if not _NAME.match(name):
                raise LayerwiseError(f"{where}.name", f"{name!r} must be letters, digits, '.', '_' or '-'")
            entries.append(SuiteEntry(
                name=name, experiment=str(experiment), plan=item.get("plan"),
                overrides=overrides + ((MODES[mode],) if mode else ()), fill=fill,
                sdpa_backend=sdpa_backend, trace=bool(item.get("trace", False)),
            ))
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise LayerwiseError("suite.entries", f"duplicate entry name {duplicates[0]!r}")
    return str(raw.get("name", suite_path.stem)), entries


def run_entry(entry: SuiteEntry, out_dir: Path, backend_request: str, timeout_s: float | None) -> EntryOutcome:
    """Run one entry; an earlier result of it is removed first, so a failure never leaves a stale one."""
    started = time.perf_counter()
    result_path = out_dir / f"{entry.name}.json"
    trace_path = out_dir / f"{entry.name}.pt.trace.json"
    for stale in (result_path, trace_path):
        stale.unlink(missing_ok=True)
    try:
        experiment = load_experiment(entry.experiment, list(entry.overrides))
        plan_name = entry.plan or experiment.plan_names[0]
        plan = build_plan(experiment, plan_name)
        backend = choose_backend(backend_request)
        nproc = check_before_launch(plan, experiment.workload, 1, backend, entry.fill)
    except LayerwiseError as exc:
        return EntryOutcome(entry.name, "failed", time.perf_counter() - started, f"error: {exc}")
    rank_timeout_s = timeout_s if timeout_s is not None else default_timeout_s(backend)
    worker = [entry.experiment, "--plan", plan_name, "--json", str(result_path), "--backend", backend_request,
              "--fill", entry.fill, "--timeout-s", str(rank_timeout_s), "--sdpa-backend", entry.sdpa_backend]
    for override in entry.overrides:
        worker += ["--set", override]
    if entry.trace:
        worker += ["--trace", str(trace_path)]
    outcome = run_torchrun(plan, torchrun_command(nproc, worker, []), rank_timeout_s + STARTUP_MARGIN_S, quiet=True)
    elapsed_s = time.perf_counter() - started
    if outcome.returncode != 0 or not result_path.is_file():
        return EntryOutcome(entry.name, "failed", elapsed_s, outcome.error or "no result file written",
                            output_tail=outcome.tail[-TAIL_LINES_KEPT:])
    metrics = load_result(result_path).metrics
    rank0_trace = trace_path.with_name(f"{trace_path.stem}.rank0.json")
    if entry.trace and rank0_trace.is_file():
        rank0_trace.replace(trace_path)  # where the validator looks for a result's profiled trace
    return EntryOutcome(entry.name, "ok", elapsed_s, metrics={
        "tokens_per_s": metrics.tokens_per_s, "step_time_s": metrics.step_time_s, "tpot_s": metrics.tpot_s,
        "ttft_s": metrics.ttft_s, "result": result_path.name,
    })


def format_table(outcomes: list[EntryOutcome]) -> str:
    width = max([len(o.name) for o in outcomes] + [5])
    lines = [f"{'entry':<{width}}  {'status':<7} {'tokens/s':>12} {'step ms':>10} {'TPOT ms':>9}"]
    for o in outcomes:
        m = o.metrics
        tps = f"{m['tokens_per_s']:.1f}" if m else "-"
        step = f"{m['step_time_s'] * 1e3:.3f}" if m else "-"
        tpot = f"{m['tpot_s'] * 1e3:.3f}" if m and m.get("tpot_s") is not None else "-"
        lines.append(f"{o.name:<{width}}  {o.status:<7} {tps:>12} {step:>10} {tpot:>9}")
    return "\n".join(lines)


def _compile_only(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise LayerwiseError("--only", f"not a regular expression ({exc}): {pattern!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m executor.suite", description=__doc__.splitlines()[0])
    parser.add_argument("suite", help="suite YAML file")
    parser.add_argument("--out", required=True, help="folder for one RunResult JSON per entry")
    parser.add_argument("--only", default=None, metavar="REGEX", help="run only entries whose name matches")
    parser.add_argument("--skip-existing", action="store_true", help="skip entries whose result file exists")
    parser.add_argument("--backend", choices=("auto", "nccl", "gloo"), default="auto")
    parser.add_argument("--timeout-s", type=cli_number("positive"), default=None, help="per-rank timeout of each entry")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override applied to every entry before its own (e.g. cluster=h200x1 on an H200)")
    args = parser.parse_args(argv)
    try:
        suite_name, entries = load_suite(args.suite)
        if args.only:
            only = _compile_only(args.only)
            entries = [e for e in entries if only.search(e.name)]
    except LayerwiseError as exc:
        print(f"executor.suite: error: {exc}", file=sys.stderr)
        return 2
    if args.overrides:
        entries = [replace(e, overrides=(*args.overrides, *e.overrides)) for e in entries]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    outcomes: list[EntryOutcome] = []
    for index, entry in enumerate(entries, start=1):
        prefix = f"[{index}/{len(entries)}] {entry.name}"
        if args.skip_existing and (out_dir / f"{entry.name}.json").is_file():
            outcomes.append(EntryOutcome(entry.name, "skipped", 0.0))
            print(f"{prefix}: skipped (result exists)", flush=True)
            continue
        print(f"{prefix} ...", flush=True)
        outcome = run_entry(entry, out_dir, args.backend, args.timeout_s)
        outcomes.append(outcome)
        if outcome.status == "ok":
            (out_dir / f"{entry.name}.error.txt").unlink(missing_ok=True)
            print(f"{prefix}: ok, {outcome.metrics['tokens_per_s']:.1f} tokens/s, step "
                  f"{outcome.metrics['step_time_s'] * 1e3:.3f} ms ({outcome.elapsed_s:.1f} s)", flush=True)
        else:
            write_text_atomic(out_dir / f"{entry.name}.error.txt",
                              "\n".join([str(outcome.error), "", "last output:", *outcome.output_tail]) + "\n")
            print(f"{prefix}: FAILED ({outcome.elapsed_s:.1f} s): {outcome.error}", flush=True)
        write_json_atomic(out_dir / "suite-summary.json", {
            "suite": suite_name, "suite_file": str(args.suite),
            "entries": [{k: v for k, v in o.__dict__.items() if k != "output_tail"} for o in outcomes],
        })
    print(format_table(outcomes), flush=True)
    failed = sum(1 for o in outcomes if o.status == "failed")
    print(f"{suite_name}: {len(outcomes) - failed} of {len(outcomes)} entries ok", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
