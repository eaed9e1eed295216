"""``layerwise simulate`` of a serving experiment: one latency table per plan (terminal text)."""

from __future__ import annotations

from layerwise.terminal.table import render_table
from serving.latency import LatencySummary, ServingMetrics

METRIC_ROWS = (("TTFT", "ttft"), ("TPOT", "tpot"), ("ITL", "itl"), ("E2E", "e2e"), ("queueing", "queueing"))
MS_PER_S = 1e3


def _ms(value_s: float | None) -> str:
    return "-" if value_s is None else f"{value_s * MS_PER_S:,.1f}"


def latency_table(metrics: ServingMetrics) -> str:
    """Mean and percentiles of each latency metric, in milliseconds."""
    rows = []
    for label, name in METRIC_ROWS:
        summary: LatencySummary | None = getattr(metrics, name)
        if summary is None:
            rows.append([label, "-", "-", "-", "-", "-", "0"])
            continue
        rows.append([label, _ms(summary.mean_s), _ms(summary.p50_s), _ms(summary.p90_s), _ms(summary.p95_s),
                     _ms(summary.p99_s), f"{summary.count:,}"])
    return render_table(["ms", "mean", "p50", "p90", "p95", "p99", "values"], rows)


def _slo_line(metrics: ServingMetrics) -> str:
    if not metrics.slo_checks:
        return "SLOs: none given"
    parts = []
    for check in metrics.slo_checks:
        slo = check.slo
        value = "-" if check.value_s is None else f"{check.value_s * MS_PER_S:,.1f} ms"
        parts.append(f"{slo.metric} {slo.percentile} {value} <= {slo.bound_s * MS_PER_S:,.1f} ms "
                     + ("met" if check.met else "MISSED"))
    verdict = "all met" if metrics.meets_slos else "not met"
    return f"SLOs ({verdict}): " + "; ".join(parts)


def serving_summary(plan_label: str, metrics: ServingMetrics, rests_on: str = "") -> str:
    """A plan's serving prediction: the verdict on stability first, the table, then rates and counts."""
    t = metrics.throughput
    lines = [f"== {plan_label}"]
    if not metrics.stability.stable:
        lines.append(f"UNSTABLE at this rate: {metrics.stability.reason}. The percentiles below are of a "
                     "finite run that never reached a steady state; they promise nothing.")
    lines.append(latency_table(metrics))
    lines.append(f"throughput: {t.requests_per_s:,.2f} requests/s, {t.output_tokens_per_s:,.0f} output tokens/s "
                 f"({t.output_tokens_per_s_per_gpu:,.0f} per GPU) over {t.duration_s:,.1f} s; goodput "
                 f"{metrics.goodput_requests_per_s:,.2f} requests/s ({metrics.slo_attainment:.1%} of requests meet "
                 "every SLO)")
    lines.append(_slo_line(metrics))
    occupancy = []
    if metrics.kv_usage is not None:
        occupancy.append(f"KV cache {metrics.kv_usage.mean:.0%} used on average (peak {metrics.kv_usage.max:.0%})")
    if metrics.running is not None:
        occupancy.append(f"{metrics.running.mean:,.1f} running (peak {metrics.running.max:,.0f})")
    if metrics.waiting is not None:
        occupancy.append(f"{metrics.waiting.mean:,.1f} waiting (peak {metrics.waiting.max:,.0f})")
    if occupancy:
        lines.append("occupancy: " + ", ".join(occupancy))
    lines.append(f"requests: {metrics.finished:,} finished, {metrics.rejected:,} rejected, {metrics.preemptions:,} "
                 f"preemptions ({metrics.preempted_requests:,} requests preempted)")
    if rests_on:
        lines.append(f"rests on: {rests_on}")
    return "\n".join(lines)
