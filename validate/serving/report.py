"""The serving validation's report: ``report.md``, ``serving-validation.json`` and ``percentiles.png``
(every held-out percentile, predicted against measured)."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from serving.slo import SloSpec
from serving.slo_flags import slo_flag_text
from validate.serving.capacity import CapacityComparison
from validate.serving.errors import METRICS, PERCENTILES, ErrorSummary, RunComparison
from validate.serving.host_fit import HostFit

SCHEMA = "layerwise-serving-validation"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ServingValidation:
    """Everything one ``layerwise validate-serving`` found."""

    folder: str
    profile_label: str
    machine: str  # the GPU and host the runs were measured on
    fit: HostFit | None  # None: the profile's host parameters as they are
    host_params: dict[str, float]  # what the predictions used
    held_out: tuple[RunComparison, ...]
    in_sample: tuple[RunComparison, ...]
    summary: tuple[ErrorSummary, ...]  # over held_out
    slos: SloSpec
    capacities: tuple[CapacityComparison, ...]

    def to_dict(self) -> dict[str, Any]:
        raw = dataclasses.asdict(self)
        raw["slos"] = [slo_flag_text(slo) for slo in self.slos.slos]
        for key in ("held_out", "in_sample"):
            for comparison, found in zip(raw[key], getattr(self, key), strict=True):
                for entry, error in zip(comparison["errors"], found.errors, strict=True):
                    entry["error"] = error.error
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **raw}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def _run_table(comparisons: Sequence[RunComparison]) -> list[str]:
    head = "| run | rate/s | requests | " + " | ".join(f"{m.upper()} {p}" for m in METRICS for p in PERCENTILES)
    lines = [head + " | req/s measured / predicted |", "|---" * (4 + len(METRICS) * len(PERCENTILES)) + "|"]
    for c in comparisons:
        rate = "burst" if c.rate_per_s is None or c.rate_per_s >= 100 else f"{c.rate_per_s:.2f}"
        cells = " | ".join(_pct(c.error_of(m, p)) for m in METRICS for p in PERCENTILES)
        lines.append(f"| {c.name} | {rate} | {c.requests} | {cells} | "
                     f"{c.measured_requests_per_s:.2f} / {c.predicted_requests_per_s:.2f} |")
    return lines


def markdown(v: ServingValidation) -> str:
    lines = [f"# Serving validation: {v.folder}", "",
             f"Measured on {v.machine}; predicted with the {v.profile_label}. Each prediction serves the run's",
             "own requests (arrival instants and lengths) with its scheduler; only iteration times differ.",
             "Errors are (predicted - measured) / measured; negative is a prediction too fast.", ""]
    host = ", ".join(f"{k} = {val * 1e6:.2f} us" for k, val in v.host_params.items())
    if v.fit is not None:
        lines += ["## Host parameters (fitted)", "",
                  f"Fitted on {len(v.fit.runs)} runs ({', '.join(v.fit.runs)}), {v.fit.iterations} iterations: "
                  f"{host}. Mean |residual| per iteration {v.fit.mean_abs_residual_s * 1e3:.2f} ms of a mean "
                  f"{v.fit.mean_duration_s * 1e3:.2f} ms ({v.fit.how}). Every other run is held out.", ""]
    else:
        lines += ["## Host parameters (from the profile, none fitted)", "", host + ".", ""]
    lines += ["## Held-out error by metric and percentile", "",
              "| metric | percentile | runs | mean abs error | worst | mean signed |", "|---|---|---|---|---|---|"]
    for s in v.summary:
        lines.append(f"| {s.metric.upper()} | {s.percentile} | {s.runs} | {s.mean_abs * 100:.1f}% | "
                     f"{s.worst * 100:+.1f}% | {s.mean_signed * 100:+.1f}% |")
    lines += ["", "## Held-out runs", "", *_run_table(v.held_out), ""]
    if v.in_sample:
        lines += ["## Fit runs (in sample, not a held-out error)", "", *_run_table(v.in_sample), ""]
    lines += ["## How steady the measured iterations were", "",
              "Decode-only iterations of one batch size (each run's most frequent) cost the simulator nearly the",
              "same; their measured spread is variation no deterministic prediction reproduces.", "",
              "| run | batch size | iterations | p10 ms | p50 ms | p90 ms | p90/p10 |", "|---|---|---|---|---|---|---|"]
    for run in (*v.held_out, *v.in_sample):
        if run.steadiness is not None:
            st = run.steadiness
            lines.append(f"| {run.name} | {st.batch_size} | {st.iterations} | {st.p10_s * 1e3:.2f} | "
                         f"{st.p50_s * 1e3:.2f} | {st.p90_s * 1e3:.2f} | {st.spread:.2f} |")
    lines += ["", "## Capacity under the SLOs", ""]
    if not v.slos.slos:
        lines.append("No SLO given (--slo): no capacity compared.")
    elif not v.capacities:
        lines.append("No workload was measured at three or more rates: no measured capacity to compare.")
    else:
        lines.append(f"SLOs: {', '.join(slo_flag_text(s) for s in v.slos.slos)} (and a steady state).")
        lines += ["", "| ladder | measured verdicts (rate/s: met?) | measured capacity | predicted | error |",
                  "|---|---|---|---|---|"]
        for c in v.capacities:
            verdicts = ", ".join(f"{rate:.2f}: {'yes' if met else 'no'}" for rate, met in c.measured.verdicts)
            low, high = c.measured.meets_up_to_per_s, c.measured.fails_at_per_s
            bracket = ("below the lowest rate" if low is None else
                       f">= {low:.2f}" if high is None else f"{low:.2f} to {high:.2f}")
            predicted = "-" if c.predicted_per_s is None else f"{c.predicted_per_s:.2f}"
            lines.append(f"| {c.runs[0]} .. ({len(c.runs)} rates) | {verdicts} | {bracket} | {predicted} | "
                         f"{_pct(c.error)} |")
    return "\n".join(lines) + "\n"


def percentiles_png(v: ServingValidation) -> bytes:
    """Measured against predicted, every held-out percentile, one panel per metric, with +-10% lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, len(METRICS), figsize=(13, 4.2))
    markers = dict(zip(PERCENTILES, ("o", "s", "^"), strict=True))
    for ax, metric in zip(axes, METRICS, strict=True):
        values = []
        for percentile in PERCENTILES:
            points = [(e.measured_s * 1e3, e.predicted_s * 1e3) for c in v.held_out for e in c.errors
                      if e.metric == metric and e.percentile == percentile]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.scatter(xs, ys, marker=markers[percentile], label=percentile, alpha=0.8)
                values += [*xs, *ys]
        if values:
            low, high = min(values) * 0.8, max(values) * 1.25
            ax.plot([low, high], [low, high], color="black", linewidth=1)
            for band in (0.9, 1.1):
                ax.plot([low, high], [low * band, high * band], color="gray", linestyle="--", linewidth=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap
        ax.set_title(f"{metric.upper()} (held out)")
        ax.set_xlabel("measured (ms)")
        ax.set_ylabel("predicted (ms)")
        ax.legend(fontsize=8)
    fig.suptitle(f"Serving: predicted against measured ({v.machine}); dashed: +-10%", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
