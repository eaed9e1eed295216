"""``--slo METRIC_PERCENTILE_UNIT=BOUND``: milliseconds and seconds to seconds, and every bad flag one
``LayerwiseError`` naming --slo."""

from __future__ import annotations

import pytest

from serving.slo import Slo, SloSpec
from serving.slo_flags import parse_slo_flag, slo_flag_text, slo_spec_from_flags
from topology.errors import LayerwiseError


def test_flags_in_milliseconds_and_seconds() -> None:
    assert parse_slo_flag("ttft_p99_ms=2000") == Slo("ttft", "p99", 2.0)
    assert parse_slo_flag("TPOT_p50_ms=12.5") == Slo("tpot", "p50", 0.0125)
    assert parse_slo_flag("e2e_p90_s=30") == Slo("e2e", "p90", 30.0)
    assert slo_flag_text(Slo("tpot", "p99", 0.05)) == "tpot_p99_ms=50"


def test_no_flag_keeps_the_experiments_slos() -> None:
    default = SloSpec((Slo("ttft", "p99", 0.5),))
    assert slo_spec_from_flags([], default) is default
    assert slo_spec_from_flags(["tpot_p99_ms=50"], default) == SloSpec((Slo("tpot", "p99", 0.05),))


@pytest.mark.parametrize(("flag", "says"), [
    ("latency_p99_ms=10", "unknown metric 'latency'"),
    ("ttft_p95_ms=10", "unknown percentile 'p95'"),
    ("ttft_p99_us=10", "unknown unit 'us'"),
    ("ttft_p99_ms=-5", "must be a finite number > 0, got -5"),
    ("ttft_p99_ms=nan", "must be a finite number > 0, got nan"),
    ("ttft_p99_ms=inf", "must be a finite number > 0"),
    ("ttft_p99_ms=0", "must be a finite number > 0"),
    ("ttft_p99_ms=fast", "is not a number"),
    ("ttft_p99_ms", "is not METRIC_PERCENTILE_UNIT=BOUND"),
    ("ttft_ms=5", "is not METRIC_PERCENTILE_UNIT"),
])
def test_bad_flags_are_one_line(flag: str, says: str) -> None:
    with pytest.raises(LayerwiseError) as caught:
        parse_slo_flag(flag)
    assert caught.value.field == "--slo" and says in caught.value.message
    assert "\n" not in str(caught.value)


def test_the_same_slo_twice_is_refused() -> None:
    with pytest.raises(LayerwiseError, match="given twice"):
        slo_spec_from_flags(["ttft_p99_ms=5", "ttft_p99_s=1"], SloSpec())
