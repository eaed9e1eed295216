"""Run the input fuzz at scale and record its counts: ``python benchmarks/bench_fuzz.py``.

The cases and the contract are those of ``tests/fuzz`` (CI runs a few hundred): generated
experiment files and ``layerwise plan`` / ``simulate --analytic`` / ``sweep --analytic``
command lines, each of which must end in a result, a one-line error (exit 2) or a sweep's
counted failed points (exit 1), never another exception, a hang past the bound, a traceback
or a partial output file. Writes the counts to ``benchmarks/bench_fuzz.md`` (``--out``) and
exits 1 if any case broke the contract.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fuzz"))
sys.path.insert(0, str(REPO))

from fuzz_cases import ACCEPTED, Case, Outcome, cases, run_case  # noqa: E402
from fuzz_kinds import KindCase, kind_cases, run_kind_case  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)

from topology.atomic_io import check_output_file, write_text_atomic  # noqa: E402

VIOLATIONS_SHOWN = 20
PARTIAL_EVERY = 250  # cases between two writes of the table so far




ACCEPTED_ALL = (*ACCEPTED, "interrupted")


def run(examples: int, bound_s: float, out: str | None = None
        ) -> tuple[Counter[tuple[str, str]], list[tuple[Any, Outcome]], float]:
    counts: Counter[tuple[str, str]] = Counter()
    violations: list[tuple[Any, Outcome]] = []
    started = time.perf_counter()

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(cases(), kind_cases()))
    def one(case: Case | KindCase) -> None:
        if isinstance(case, KindCase):
            outcome, label = run_kind_case(case, bound_s), f"{case.kind} {case.file_kind}".strip()
        else:
            outcome, label = run_case(case, bound_s), case.command
        counts[(label, outcome.kind)] += 1
        if outcome.kind not in ACCEPTED_ALL:
            violations.append((case, outcome))
            print(f"violation {outcome.kind}: {case!r}"[:2000], file=sys.stderr, flush=True)
        done = sum(counts.values())
        if done % PARTIAL_EVERY == 0:
            print(f"{done} cases, {len(violations)} violations, {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)
            if out is not None:  # the table so far: a run stopped early still leaves its counts
                write_text_atomic(out, render(counts, violations, time.perf_counter() - started, examples, bound_s,
                                              partial=True))

    one()
    return counts, violations, time.perf_counter() - started


def render(counts: Counter[tuple[str, str]], violations: list[tuple[Any, Outcome]], wall_s: float,
           examples: int, bound_s: float, partial: bool = False) -> str:
    commands = sorted({c for c, _ in counts})
    kinds = [*ACCEPTED_ALL, *sorted({k for _, k in counts} - set(ACCEPTED_ALL))]
    total = sum(counts.values())
    lines = [
        "# Input fuzz: every input ends in a result or one clear line",
        "",
        f"Command: `python benchmarks/bench_fuzz.py --examples {examples}` (the cases of `tests/fuzz/fuzz_cases.py`,",
        f"and `tests/fuzz/fuzz_kinds.py`, hypothesis derandomized; a case that runs past {bound_s:.0f} s "
        "counts as a hang).",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{total:,} cases in {wall_s:.0f} s wall."
        + (f" **Partial: {total:,} of the {examples:,} cases asked for (still running).**" if partial else ""),
        "",
        "| command | " + " | ".join(kinds) + " | cases |",
        "| --- | " + " | ".join("---:" for _ in kinds) + " | ---: |",
    ]
    for command in commands:
        row = [f"{counts[(command, k)]:,}" for k in kinds]
        lines.append(f"| `{command}` | " + " | ".join(row) + f" | {sum(counts[(command, k)] for k in kinds):,} |")
    lines.append("| all | " + " | ".join(f"{sum(counts[(c, k)] for c in commands):,}" for k in kinds)
                 + f" | {total:,} |")
    broken = total - sum(counts[(c, k)] for c in commands for k in ACCEPTED_ALL)
    lines += ["", f"**{broken:,} of {total:,} cases broke the contract.** "
                  "result: exit 0 and a whole output file; error: exit 2 and one line; "
                  "failed-points: a sweep that wrote every row, exit 1, the failures counted; interrupted: a "
                  "signal at a random point ended the command within 2 s with one line, exit 128 + the signal, "
                  "no process left and no output file. Input kinds: experiment files and command lines "
                  "(`plan`, `simulate`, `sweep`), mutated profiles, saved plans, results and traces, files of "
                  "the wrong kind (`file ...`), signals (`signal`)."]
    if violations:
        lines += ["", "## Violations (first ones)", ""]
        for case, outcome in violations[:VIOLATIONS_SHOWN]:
            detail = outcome.detail.strip().splitlines()[-1] if outcome.detail.strip() else ""
            lines.append(f"- `{outcome.kind}`: {detail}; case `{case!r}`"[:600])
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--bound-s", type=float, default=20.0, help="a case running longer is a hang")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "bench_fuzz.md"))
    args = parser.parse_args()
    check_output_file(args.out, "--out")
    counts, violations, wall_s = run(args.examples, args.bound_s, args.out)
    text = render(counts, violations, wall_s, args.examples, args.bound_s)
    write_text_atomic(args.out, text)
    print(text)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
