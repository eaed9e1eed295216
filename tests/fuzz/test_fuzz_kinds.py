"""A CI slice of the fuzz over every other input kind (``fuzz_kinds``; ``benchmarks/bench_fuzz.py`` runs
10,000 cases over all kinds): a clean result or one clean line, never a traceback, hang, orphan or partial file."""

from __future__ import annotations

from fuzz_cases import Outcome
from fuzz_kinds import KindCase, kind_cases, run_kind_case
from hypothesis import HealthCheck, given, settings

ACCEPTED_KINDS = ("result", "error", "interrupted")
CI_EXAMPLES = 80


@settings(max_examples=CI_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(case=kind_cases())
def test_every_input_kind_ends_in_a_result_or_one_line(case: KindCase) -> None:
    outcome = run_kind_case(case, bound_s=30.0)
    assert outcome.kind in ACCEPTED_KINDS, (outcome, case)


def test_the_kind_harness_sees_a_violation() -> None:
    """The contract can fail: a profile the loader would once accept is not waved through as 'error' by
    accident, and a signal case is judged by its exit code and what it left."""
    nan_profile = KindCase("profile", mutations=((("params", "matmul_flops_per_s"), float("nan")),))
    outcome = run_kind_case(nan_profile)
    assert outcome == Outcome("error", outcome.detail) and "matmul_flops_per_s" in outcome.detail
    assert run_kind_case(KindCase("profile")).kind == "result"
