"""The search's Pareto plot (matplotlib): throughput against latency, for the plans within the limits.

Left: tokens/s against TPOT (decode) or mean TTFT (prefill). With a fixed batch, decode's
tokens/s is batch / TPOT, so every plan lies on one curve there: the plans differ in where.
Right: tokens/s per GPU against the same latency, where plans on fewer GPUs can win; the line
joins the Pareto front (no other plan is both faster per GPU and lower in latency).
Grey dots: every plan the twin scored in full (the uniform TP x PP family and the DP's best);
coloured marks: the finalists the event simulation ran; the star: the answer.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sim.search.result import Candidate, SearchResult
from topology.atomic_io import write_bytes_atomic

ORIGIN_COLOURS = {"search": "tab:blue", "tp-pp family": "tab:orange", "layer-wise family": "tab:green",
                  "experiment": "tab:red"}


def _latency_s(result: SearchResult, tpot_s: float | None, ttft_s: float | None) -> float:
    value = tpot_s if result.phase == "decode" else ttft_s
    assert value is not None
    return value


def _colour(candidate: Candidate) -> str:
    origin = candidate.origin.split(";")[0].split(":")[0]
    return ORIGIN_COLOURS.get(origin, "tab:purple")


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points (latency, per-GPU throughput) that no other point beats on both, by latency."""
    front: list[tuple[float, float]] = []
    for latency, throughput in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or throughput > front[-1][1]:
            front.append((latency, throughput))
    return front


def plot_search(result: SearchResult, path: str) -> None:
    o = result.options
    scatter = []
    for s in result.scored:
        latency = s.step_s if result.phase == "decode" else s.ttft_s
        if latency is None:
            continue
        limit_s = o.max_tpot_s if result.phase == "decode" else o.max_ttft_s
        if limit_s is not None and latency > limit_s:
            continue
        tokens_per_s = result.tokens_per_iteration / s.step_s
        scatter.append((latency, tokens_per_s, tokens_per_s / s.layout.num_gpus))
    label = "TPOT (ms)" if result.phase == "decode" else "mean TTFT (ms)"
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2 + 0.13 * len(result.ranked)))
    for axis, column in ((left, 1), (right, 2)):
        axis.scatter([p[0] * 1e3 for p in scatter], [p[column] for p in scatter], s=9, color="0.75",
                     label="scored by the twin", zorder=1)
    finalists = list(result.ranked)
    for index, c in enumerate(finalists):
        p = c.prediction
        x = _latency_s(result, p.tpot_s, p.ttft_s) * 1e3
        marker, size = ("*", 260) if index == 0 else ("o", 50)
        for axis, y in ((left, p.tokens_per_s), (right, c.tokens_per_s_per_gpu)):
            axis.scatter([x], [y], marker=marker, s=size, color=_colour(c), edgecolor="black", linewidth=0.6,
                         zorder=3)
            axis.annotate(f"#{index + 1}", (x, y), textcoords="offset points", xytext=(7, -3), fontsize=7)
    front = pareto_front([(p[0], p[2]) for p in scatter]
                         + [(_latency_s(result, c.prediction.tpot_s, c.prediction.ttft_s), c.tokens_per_s_per_gpu)
                            for c in finalists])
    right.plot([p[0] * 1e3 for p in front], [p[1] for p in front], color="tab:red", linewidth=1.4,
               linestyle="--", marker="s", markersize=3, drawstyle="steps-post", label="Pareto front", zorder=2)
    unit = "TPOT" if result.phase == "decode" else "TTFT"
    listing = "\n".join(
        f"#{i + 1} {c.layout.describe()}: {c.prediction.tokens_per_s:,.0f} tok/s, {c.gpus} GPUs, {unit} "
        f"{_latency_s(result, c.prediction.tpot_s, c.prediction.ttft_s) * 1e3:.2f} ms ({c.origin})"
        for i, c in enumerate(finalists))
    figure.text(0.01, 0.01, listing, fontsize=6.5, family="monospace", va="bottom")
    for origin, colour in ORIGIN_COLOURS.items():
        left.scatter([], [], color=colour, edgecolor="black", linewidth=0.6, label=f"{origin} (events)")
    left.set_xlabel(label)
    left.set_ylabel("tokens/s")
    right.set_xlabel(label)
    right.set_ylabel("tokens/s per GPU")
    left.set_title("throughput against latency")
    right.set_title("throughput per GPU against latency")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.set_xscale("log")
    left.legend(fontsize=7, loc="best")
    right.legend(fontsize=7, loc="best")
    figure.suptitle(f"{result.model} on {result.cluster} ({result.phase}, {result.parameters}): "
                    f"the star is the search's answer", fontsize=10)
    figure.tight_layout(rect=(0, 0.02 + 0.022 * len(result.ranked), 1, 1))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
