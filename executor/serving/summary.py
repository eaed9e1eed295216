"""The few lines a serving run prints: counts, throughput, and TTFT, TPOT, ITL, E2E percentiles
(``serving.latency``'s definitions)."""

from __future__ import annotations

from serving.driver import ServingRun
from serving.latency import LatencySummary, serving_metrics
from serving.slo import SloSpec


def _ms(summary: LatencySummary | None) -> str:
    if summary is None:
        return "-"
    return (f"p50 {summary.p50_s * 1e3:.2f}  p90 {summary.p90_s * 1e3:.2f}  p99 {summary.p99_s * 1e3:.2f}  "
            f"mean {summary.mean_s * 1e3:.2f} ms")


def summary_lines(run: ServingRun, num_gpus: int, slos: SloSpec = SloSpec()) -> list[str]:  # noqa: B008
    metrics = serving_metrics(run.records, num_gpus=num_gpus, slos=slos, samples=run.samples)
    rate = metrics.throughput
    lines = [f"{metrics.finished} finished, {metrics.rejected} rejected, {metrics.preemptions} preemptions, "
             f"{len(run.iterations)} iterations in {rate.duration_s:.2f} s: {rate.requests_per_s:.2f} requests/s, "
             f"{rate.output_tokens_per_s:.1f} output tokens/s ({rate.output_tokens_per_s_per_gpu:.1f} per GPU)"]
    for name, summary in (("TTFT", metrics.ttft), ("TPOT", metrics.tpot), ("ITL", metrics.itl),
                          ("E2E", metrics.e2e)):
        lines.append(f"{name:<4} {_ms(summary)}")
    if not metrics.stability.stable:
        lines.append(f"unstable at this rate: {metrics.stability.reason}")
    for check in metrics.slo_checks:
        value = "-" if check.value_s is None else f"{check.value_s * 1e3:.2f} ms"
        lines.append(f"SLO {check.slo.metric} p{check.slo.quantile_percent:g} <= {check.slo.bound_s * 1e3:g} ms: "
                     f"{value} {'met' if check.met else 'missed'}")
    return lines
