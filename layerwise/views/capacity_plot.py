"""``layerwise capacity --plot``: requests/s per GPU against p99 TTFT and p99 TPOT, every simulated rate
of every deployment, the Pareto frontier of those that met every SLO, and the SLO bounds as lines."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

from sim.capacity.result import CapacityResult

MS_PER_S = 1e3


def _points(result: CapacityResult, name: str) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(requests/s per GPU, latency ms) of every full run: those that met every SLO, and the others."""
    met: list[tuple[float, float]] = []
    missed: list[tuple[float, float]] = []
    for finding in (*result.ranked, *result.others):
        gpus = finding.deployment.gpus
        for probe in finding.probes:
            value = probe.latency_s(name)
            if value is None or probe.stood_in:
                continue
            (met if probe.met else missed).append((probe.rate_per_s / gpus, value * MS_PER_S))
    return met, missed


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other beats on both axes (more requests/s per GPU, less latency), by rate; drawn
    as a staircase: at a rate x, the least latency of a point at x or above."""
    front: list[tuple[float, float]] = []
    for rate, latency in sorted(points, key=lambda p: (-p[0], p[1])):
        if not front or latency < front[-1][1]:
            front.append((rate, latency))
    return sorted(front)


def _panel_metric(result: CapacityResult, metric: str) -> tuple[str, str]:
    """The latency a panel shows: the SLO's percentile of ``metric`` if there is one, else p99."""
    percentile = next((s.percentile for s in result.options.slos.slos if s.metric == metric), "p99")
    return f"{metric}_{percentile}", f"{percentile} {metric.upper()}"


def capacity_png(result: CapacityResult, title: str) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, metric in ((axes[0], "ttft"), (axes[1], "tpot")):
        name, label = _panel_metric(result, metric)
        met, missed = _points(result, name)
        if missed:
            ax.scatter(*zip(*missed, strict=True), s=12, facecolors="none", edgecolors="tab:grey",
                       label="a simulated rate that missed an SLO")
        if met:
            ax.scatter(*zip(*met, strict=True), s=14, color="tab:blue", label="a simulated rate that met every SLO")
            front = pareto_front(met)
            ax.step(*zip(*front, strict=True), where="pre", color="tab:red", linewidth=1.5,
                    label="Pareto frontier (met every SLO)")
        best = result.best
        at = None if best is None else best.at_capacity
        if best is not None and at is not None and at.latency_s(name) is not None:
            value = at.latency_s(name)
            assert value is not None and best.per_gpu is not None
            ax.scatter([best.per_gpu], [value * MS_PER_S], marker="*", s=160, color="tab:red", zorder=5,
                       label=f"best: {best.deployment.describe_plan()} x {best.deployment.describe_replicas()}")
        percentile = name.split("_")[1]
        for slo in result.options.slos.slos:
            if slo.metric == metric and slo.percentile == percentile:
                ax.axhline(slo.bound_s * MS_PER_S, color="black", linestyle="--", linewidth=1,
                           label=f"SLO {label} <= {slo.bound_s * MS_PER_S:g} ms")
        ax.set_xlabel("requests/s per GPU")
        ax.set_ylabel(f"{label} (ms)")
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"{label} against load")
    fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
