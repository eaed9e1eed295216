"""SLOs as a command line writes them: ``--slo ttft_p99_ms=2000 --slo tpot_p99_ms=50``.

One flag is ``METRIC_PERCENTILE_UNIT=BOUND``: metric in ttft, tpot, e2e, itl; percentile in p50, p90,
p99; unit ``ms`` or ``s``. The bound is converted to seconds here, once (an experiment file's ``slo:``
is in seconds already, :mod:`serving.slo`). A bad flag is one ``LayerwiseError`` naming ``--slo``.
"""

from __future__ import annotations

import math

from serving.slo import SLO_METRICS, SLO_PERCENTILES, Slo, SloSpec
from topology.errors import LayerwiseError

FLAG = "--slo"
SECONDS_PER_UNIT = {"ms": 1e-3, "s": 1.0}


def parse_slo_flag(text: str) -> Slo:
    """One ``--slo`` value as an :class:`~serving.slo.Slo` (bound in seconds)."""
    example = "e.g. ttft_p99_ms=2000"
    name, sep, value = text.partition("=")
    if not sep:
        raise LayerwiseError(FLAG, f"{text!r} is not METRIC_PERCENTILE_UNIT=BOUND ({example})")
    parts = name.strip().lower().split("_")
    if len(parts) != 3:
        raise LayerwiseError(FLAG, f"{name!r} is not METRIC_PERCENTILE_UNIT ({example})")
    metric, percentile, unit = parts
    if metric not in SLO_METRICS:
        raise LayerwiseError(FLAG, f"unknown metric {metric!r} in {text!r} (known: {', '.join(SLO_METRICS)})")
    if percentile not in SLO_PERCENTILES:
        raise LayerwiseError(FLAG, f"unknown percentile {percentile!r} in {text!r} "
                                   f"(known: {', '.join(SLO_PERCENTILES)})")
    if unit not in SECONDS_PER_UNIT:
        raise LayerwiseError(FLAG, f"unknown unit {unit!r} in {text!r} (known: {', '.join(SECONDS_PER_UNIT)})")
    try:
        bound = float(value)
    except ValueError:
        raise LayerwiseError(FLAG, f"{value!r} in {text!r} is not a number") from None
    if not math.isfinite(bound) or bound <= 0.0:
        raise LayerwiseError(FLAG, f"the bound in {text!r} must be a finite number > 0, got {value.strip()}")
    return Slo(metric, percentile, bound * SECONDS_PER_UNIT[unit])


def slo_spec_from_flags(texts: list[str], default: SloSpec) -> SloSpec:
    """The ``--slo`` flags as one spec; none given: ``default`` (the experiment file's ``slo:``)."""
    if not texts:
        return default
    slos = tuple(parse_slo_flag(text) for text in texts)
    seen: set[tuple[str, str]] = set()
    for slo in slos:
        if (slo.metric, slo.percentile) in seen:
            raise LayerwiseError(FLAG, f"{slo.metric} {slo.percentile} is given twice")
        seen.add((slo.metric, slo.percentile))
    return SloSpec(slos)


def slo_flag_text(slo: Slo) -> str:
    """The flag that gives ``slo`` back (milliseconds), for messages and JSON."""
    return f"{slo.metric}_{slo.percentile}_ms={slo.bound_s * 1e3:g}"
