"""Benchmark: the executor's speed on every shape, against a minimal reference and the hardware floor.

``grid``: runs the executor (its own decode loop and prefill pass, in this process, one GPU) over
a grid of layer shapes (head_dim 64 and 128; MHA and GQA at group sizes 1, 4, 8; hidden 2048 to
8192; batch 1 to 256; context 512 to 32k; CUDA graphs and eager; prefill), and beside each decode
case a minimal single-GPU PyTorch decode of the same layers. Reports the step time, the reference's
(and the executor's speed as a fraction of it), the HBM floor (weights + KV over the measured read
bandwidth) and the fraction reached, and for prefill the fraction of the measured matmul rate,
with the goals of issue 15. Writes ``OUT/bench-executor.md`` and ``OUT/bench-executor.json``
(rewritten after every case) and prints a short table last. See ``benchmarks/bench_executor.md``.

``runs``: the floor table of measured result JSONs (``python -m executor.suite`` output).

Usage::

    python benchmarks/bench_executor.py grid --out DIR --profile PROFILE.json [--quick] [--only REGEX]
    python benchmarks/bench_executor.py runs [RESULT.json | DIR ...] [--profile P] [--out MD]
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from executor_bench.floor import Rates, rates_from_datasheet, rates_from_profile
from executor_bench.measure import CaseResult, run_case
from executor_bench.runs import HEADER as RUNS_HEADER
from executor_bench.runs import collect_results, run_rows
from executor_bench.shapes import BenchCase, cpu_grid, full_grid, quick_gpu_grid
from executor_bench.table import render_markdown, render_short, result_record

from executor.environment import collect_environment
from layerwise.terminal.table import render_table
from topology.atomic_io import write_json_atomic, write_text_atomic
from topology.errors import LayerwiseError
from topology.hardware import gpu_preset_for_device
from topology.profile import load_profile

DEFAULT_RESULTS = Path("results/hardware")
DEFAULT_MAX_WALL_S = 300.0
MD_NAME, JSON_NAME = "bench-executor.md", "bench-executor.json"


def _device(requested: str) -> torch.device:
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise LayerwiseError("--device", "cuda asked for but no CUDA GPU is visible (use --device cpu)")
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    return device


def _rates(profile_arg: str | None, gpu_name: str, device: torch.device) -> Rates:
    if profile_arg is None:
        return rates_from_datasheet(gpu_name)
    profile = load_profile(profile_arg)
    if device.type == "cuda" and gpu_preset_for_device(profile.gpu_name) != gpu_preset_for_device(gpu_name):
        raise LayerwiseError("--profile", f"{profile_arg} was measured on {profile.gpu_name!r}, this is {gpu_name!r}")
    return rates_from_profile(profile, Path(profile_arg))


def _cases(device: torch.device, quick: bool, only: str | None) -> tuple[BenchCase, ...]:
    cases = cpu_grid() if device.type == "cpu" else (quick_gpu_grid() if quick else full_grid())
    if only is None:
        return cases
    try:
        pattern = re.compile(only)
    except re.error as exc:
        raise LayerwiseError("--only", f"{only!r} is not a regular expression ({exc})") from None
    chosen = tuple(case for case in cases if pattern.search(case.name))
    if not chosen:
        raise LayerwiseError("--only", f"{only!r} matches none of the {len(cases)} cases")
    return chosen


def _not_run(case: BenchCase, max_wall_s: float) -> CaseResult:
    return CaseResult(case, "skipped", f"not run: the wall budget of {max_wall_s:.0f} s (--max-wall-s) was spent")


def run_grid(args: argparse.Namespace) -> int:
    device = _device(args.device)
    gpu_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rates = _rates(args.profile, gpu_name, device)
    cases = _cases(device, args.quick, args.only)
    out = Path(args.out)
    environment = collect_environment(device, "single process", 1)
    header = [
        f"# Executor benchmark: {gpu_name}",
        "",
        f"Machine: {gpu_name}, torch {torch.__version__}, CUDA {torch.version.cuda or '-'}, "
        f"git {environment['git_commit']}, {datetime.now(timezone.utc).isoformat(timespec='seconds')}.",
        f"Command: `python benchmarks/bench_executor.py {shlex.join(args.argv)}`.",
        "" if device.type == "cuda" else "CPU plumbing run: tiny float32 shapes, eager only; the numbers mean nothing.",
    ]
    started_s = time.perf_counter()
    results: list[CaseResult] = []
    for index, case in enumerate(cases):
        if time.perf_counter() - started_s > args.max_wall_s:
            results += [_not_run(c, args.max_wall_s) for c in cases[index:]]
            break
        result = run_case(case, device, rates, quick_cpu=device.type == "cpu")
        results.append(result)
        print(f"[bench] {index + 1}/{len(cases)} {case.name}: {result.status} "
              f"{'' if result.step_s is None else f'{result.step_s * 1e3:.3f} ms'} ({result.wall_s:.1f} s)",
              file=sys.stderr, flush=True)
        _write(out, results, rates, header, environment)
    _write(out, results, rates, header, environment)
    print(render_short(results))
    print(f"wrote {out / MD_NAME} and {out / JSON_NAME} ({time.perf_counter() - started_s:.0f} s)")
    return 1 if any(r.status == "failed" for r in results) else 0


def _write(out: Path, results: list[CaseResult], rates: Rates, header: list[str], environment: dict[str, object]
           ) -> None:
    write_text_atomic(out / MD_NAME, render_markdown(results, rates, header))
    write_json_atomic(out / JSON_NAME, {"environment": environment, "rates": vars(rates),
                                        "cases": [result_record(r) for r in results]})


def run_runs(args: argparse.Namespace) -> int:
    results = collect_results(args.results or [str(DEFAULT_RESULTS)])
    if not results:
        raise LayerwiseError("results", f"no GPU hardware results under {', '.join(args.results)}")
    table = render_table(RUNS_HEADER, run_rows(results, args.profile))
    print(table)
    if args.out:
        write_text_atomic(args.out, table + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    grid = commands.add_parser("grid", help="run the executor and the reference over the shape grid")
    grid.add_argument("--out", required=True, help="folder for bench-executor.md and bench-executor.json")
    grid.add_argument("--profile", default=None,
                      help="calibration profile of this machine (HBM read bandwidth, matmul rate); "
                           "default: the GPU data file's datasheet figures")
    grid.add_argument("--quick", action="store_true", help="a few shapes (a GPU smoke test, well under a minute)")
    grid.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                      help="cpu: a plumbing run on tiny shapes")
    grid.add_argument("--only", default=None, metavar="REGEX", help="only the cases whose name matches")
    grid.add_argument("--max-wall-s", type=float, default=DEFAULT_MAX_WALL_S,
                      help=f"start no case after this many seconds (default {DEFAULT_MAX_WALL_S:.0f})")
    runs = commands.add_parser("runs", help="the floor table of measured result JSONs")
    runs.add_argument("results", nargs="*", help=f"result JSONs or folders (default {DEFAULT_RESULTS})")
    runs.add_argument("--profile", default=None, help="calibration profile JSON (default: results/profiles/)")
    runs.add_argument("--out", default=None, help="also write the table here")
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return run_grid(args) if args.command == "grid" else run_runs(args)
    except LayerwiseError as exc:
        print(f"bench_executor: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
