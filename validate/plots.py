"""The report's figures, drawn with matplotlib (Agg) and returned as PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from validate.crossval import Outcome
from validate.timeline import Bar

VARIANT_STYLE = {
    "held_out": ("held-out fit", "tab:blue", "o"),
    "uncalibrated": ("uncalibrated (profile, no fit)", "tab:orange", "s"),
    "datasheet": ("datasheet only", "tab:gray", "^"),
}
MS_PER_S = 1e3


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _short(key: str) -> str:
    return key if len(key) <= 40 else key[:18] + "..." + key[-19:]


def scatter_png(outcomes: tuple[Outcome, ...]) -> bytes:
    """Measured against predicted step time, every variant, with the y = x line."""
    fig, ax = plt.subplots(figsize=(6.0, 5.5))
    measured = [o.measured_step_time_s * MS_PER_S for o in outcomes]
    everything = list(measured)
    for variant, (label, colour, marker) in VARIANT_STYLE.items():
        predicted = [getattr(o, variant).step_time_s * MS_PER_S for o in outcomes]
        everything += predicted
        ax.scatter(measured, predicted, label=label, color=colour, marker=marker, s=28, alpha=0.8)
    low, high = min(everything) * 0.8, max(everything) * 1.25
    ax.plot([low, high], [low, high], color="black", linewidth=1, label="y = x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("measured step time (ms)")
    ax.set_ylabel("predicted step time (ms)")
    ax.set_title("Measured vs predicted step time")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _png(fig)


def error_bars_png(outcomes: tuple[Outcome, ...]) -> bytes:
    """Relative error of each experiment, held-out next to uncalibrated."""
    keys = [_short(o.measurement.key) for o in outcomes]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * len(keys) + 2), 4.5))
    width = 0.4
    positions = range(len(keys))
    for shift, variant in ((-width / 2, "held_out"), (width / 2, "uncalibrated")):
        label, colour, _ = VARIANT_STYLE[variant]
        errors = [100 * o.relative_error(variant) for o in outcomes]
        ax.bar([p + shift for p in positions], errors, width=width, label=label, color=colour)
    for level in (-25, -10, 10, 25):
        ax.axhline(level, color="red" if abs(level) == 25 else "gray", linestyle="--", linewidth=0.8)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(list(positions))
    ax.set_xticklabels(keys, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("(predicted - measured) / measured (%)")
    ax.set_title("Per-experiment relative error of the step time")
    ax.legend(fontsize=8)
    return _png(fig)


def breakdown_png(outcomes: tuple[Outcome, ...]) -> bytes:
    """Per experiment: the simulated step time by cause (held-out fit) beside the measured
    per-stage times (mean over stages of compute, communication and idle)."""
    components: list[str] = []
    for o in outcomes:
        for name in o.held_out.breakdown_s:
            if name not in components:
                components.append(name)
    keys = [_short(o.measurement.key) for o in outcomes]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(keys) + 2), 4.8))
    width = 0.38
    colours = plt.get_cmap("tab10")
    for i, o in enumerate(outcomes):
        bottom = 0.0
        for c, name in enumerate(components):
            value = o.held_out.breakdown_s.get(name, 0.0) * MS_PER_S
            ax.bar(i - width / 2, value, width, bottom=bottom, color=colours(c),
                   label=f"sim: {name}" if i == 0 else None)
            bottom += value
        stages = o.measurement.result.metrics.stages
        parts: tuple[tuple[str, float, str], ...]
        if stages:
            parts = (
                ("measured: compute", sum(s.compute_s for s in stages) / len(stages), "#555555"),
                ("measured: communication", sum(s.communication_s for s in stages) / len(stages), "#999999"),
                ("measured: idle", sum(s.idle_s for s in stages) / len(stages), "#dddddd"),
            )
        else:
            parts = (("measured: step (no per-stage times)", o.measured_step_time_s, "#bbbbbb"),)
        bottom = 0.0
        for label, value_s, colour in parts:
            ax.bar(i + width / 2, value_s * MS_PER_S, width, bottom=bottom, color=colour, hatch="//",
                   edgecolor="white", label=label if i == 0 else None)
            bottom += value_s * MS_PER_S
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(keys, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("time per step (ms)")
    ax.set_title("Step time breakdown: simulated (left) vs measured per-stage (right)")
    ax.legend(fontsize=7, ncol=2)
    return _png(fig)


KERNEL_CLASSES = (  # (class, substrings of a CUDA kernel's name), first match wins
    ("attention", ("flash", "fmha", "attention", "sdpa", "cudnn")),
    ("gemm", ("gemm", "xmma", "cutlass", "nvjet", "matmul", "sm90")),
    ("norm / reduce", ("reduce", "norm", "rsqrt")),
    ("copy", ("memcpy", "memset", "copy", "cat")),
    ("elementwise", ("elementwise", "vectorized", "pointwise", "unrolled")),
)


def kernel_class(name: str) -> str:
    """A short class for a profiled kernel's (long, templated) name; short names stay as they are."""
    if len(name) <= 28:
        return name
    lowered = name.lower()
    for label, needles in KERNEL_CLASSES:
        if any(needle in lowered for needle in needles):
            return label
    return "other kernel"


def _gantt(ax: plt.Axes, bars: list[Bar], title: str) -> None:
    rows = sorted({b.row for b in bars})
    by_category = len({b.category for b in bars}) > 2  # else colour by operator, to show the layer's structure

    def kind(bar: Bar) -> str:
        return bar.category if by_category and bar.category else kernel_class(bar.operator)

    categories = sorted({kind(b) for b in bars})
    colours = plt.get_cmap("tab20")
    colour_of = {c: colours(i % 20) for i, c in enumerate(categories)}
    t0 = min(b.start_s for b in bars)
    for y, row in enumerate(rows):
        spans = [((b.start_s - t0) * MS_PER_S, b.duration_s * MS_PER_S) for b in bars if b.row == row]
        cols = [colour_of[kind(b)] for b in bars if b.row == row]
        ax.broken_barh(spans, (y - 0.4, 0.8), facecolors=cols)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r if len(r) <= 28 else r[:26] + ".." for r in rows], fontsize=7)
    ax.set_xlabel("time (ms)")
    ax.set_title(title, fontsize=9)
    if len(categories) <= 20:
        handles = [plt.Rectangle((0, 0), 1, 1, color=colour_of[c]) for c in categories]
        ax.legend(handles, categories, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def timelines_png(simulated: list[Bar], profiled: list[Bar] | None, simulated_title: str,
                  profiled_title: str) -> bytes:
    """The simulated timeline and (when there is one) the profiled one, side by side."""
    panels = 2 if profiled else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.0), squeeze=False)
    _gantt(axes[0][0], simulated, simulated_title)
    if profiled:
        _gantt(axes[0][1], profiled, profiled_title)
    fig.tight_layout()
    return _png(fig)


def seed_prediction_png(labels: list[str], tokens_per_s: list[float], error_fraction: float,
                        claims: list[float | None]) -> bytes:
    """Predicted tokens/s (with the held-out error as a band) beside the paper's claims."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(labels) + 2), 4.2))
    positions = range(len(labels))
    errors = [t * error_fraction for t in tokens_per_s]
    ax.bar([p - 0.2 for p in positions], tokens_per_s, 0.4, yerr=errors, capsize=4, color="tab:blue",
           label="calibrated simulator (bar: held-out MAPE)")
    claimed = [c if c is not None else 0.0 for c in claims]
    ax.bar([p + 0.2 for p in positions], claimed, 0.4, color="tab:red", alpha=0.7, label="paper's claim")
    ax.set_xticks(list(positions))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("tokens/s")
    ax.set_title("Seed experiment, 16 x H100: predicted vs claimed")
    ax.legend(fontsize=8)
    return _png(fig)
