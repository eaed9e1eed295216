"""Every generated input ends in a result or a one-line error (issue 13): never another
exception, a hang, a traceback or a partial output file. CI runs a bounded number of cases;
``benchmarks/bench_fuzz.py`` runs 10,000 and counts the outcomes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import fuzz_cases
import pytest
from fuzz_cases import ACCEPTED, Case, cases, run_case
from hypothesis import HealthCheck, given, settings

CI_EXAMPLES = 300


@settings(max_examples=CI_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(case=cases())
def test_every_input_ends_in_a_result_or_one_line(case: Case) -> None:
    outcome = run_case(case, bound_s=20.0)
    assert outcome.kind in ACCEPTED, (outcome, case)


def test_the_harness_catches_what_it_must(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract can fail: each kind of violation is classified as one, not waved through."""
    case = Case("plan", {}, (), "file")
    assert run_case(case).kind == "error"  # the real command: an empty experiment file, one line

    def crash(argv: list[str]) -> int:
        raise ZeroDivisionError("integer modulo by zero")

    def partial(argv: list[str]) -> int:
        Path(argv[argv.index("--out") + 1]).write_text("{half")
        print("layerwise plan: error: disk full", file=sys.stderr)
        return 2

    def two_lines(argv: list[str]) -> int:
        print("layerwise plan: error: one\nand another", file=sys.stderr)
        return 2

    def hang(argv: list[str]) -> int:
        time.sleep(5)
        return 0

    for fake, kind in ((crash, "crash"), (partial, "partial-output"), (two_lines, "not-one-line"), (hang, "hang")):
        monkeypatch.setattr(fuzz_cases, "main", fake)
        assert run_case(case, bound_s=0.3).kind == kind
