"""The report's figures, drawn with matplotlib (Agg) and returned as PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from validate.coverage import BandCheck
from validate.crossval import Outcome
from validate.kernel_kinds import classify_kernel
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
    """Relative error of each run, held-out next to uncalibrated: horizontal bars, one readable
    name per row, grouped by regime (a separator line between regimes)."""
    ordered = sorted(outcomes, key=lambda o: (o.measurement.regime, o.measurement.key))
    names = [f"{o.measurement.key}  [{o.measurement.regime}]" for o in ordered]
    fig, ax = plt.subplots(figsize=(9.0, 0.28 * len(names) + 1.6))
    height = 0.4
    rows = range(len(names))
    for shift, variant in ((-height / 2, "held_out"), (height / 2, "uncalibrated")):
        label, colour, _ = VARIANT_STYLE[variant]
        errors = [100 * o.relative_error(variant) for o in ordered]
        ax.barh([r + shift for r in rows], errors, height=height, label=label, color=colour)
    for level in (-25, -10, 10, 25):
        ax.axvline(level, color="red" if abs(level) == 25 else "gray", linestyle="--", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    for i in range(1, len(ordered)):
        if ordered[i].measurement.regime != ordered[i - 1].measurement.regime:
            ax.axhline(i - 0.5, color="black", linewidth=0.6)
    ax.set_yticks(list(rows))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_ylim(len(names) - 0.5, -0.5)  # first run at the top
    ax.set_xlabel("(predicted - measured) / measured (%)")
    ax.set_title("Per-run relative error of the step time")
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.02), ncol=2, borderaxespad=0.0)
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def breakdown_png(outcomes: tuple[Outcome, ...]) -> bytes:
    """Per run: the simulated step time by cause (held-out fit, upper bar) beside the measured
    per-stage times (mean over stages of compute, communication and idle; lower bar, hatched).
    Horizontal, one readable name per row; time as a share of the measured step, so runs of
    0.8 ms and 125 ms share one axis."""
    ordered = sorted(outcomes, key=lambda o: (o.measurement.regime, o.measurement.key))
    components: list[str] = []
    for o in ordered:
        components += [c for c in o.held_out.breakdown_s if c not in components and o.held_out.breakdown_s[c] > 0]
    names = [f"{o.measurement.key}  [{o.measurement.regime}]" for o in ordered]
    fig, ax = plt.subplots(figsize=(9.0, 0.34 * len(names) + 1.8))
    height = 0.38
    colours = plt.get_cmap("tab10")
    for i, o in enumerate(ordered):
        scale = 100.0 / o.measured_step_time_s
        left = 0.0
        for c, name in enumerate(components):
            value = o.held_out.breakdown_s.get(name, 0.0) * scale
            ax.barh(i - height / 2, value, height, left=left, color=colours(c),
                    label=f"sim: {name}" if i == 0 else None)
            left += value
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
        left = 0.0
        for label, value_s, colour in parts:
            ax.barh(i + height / 2, value_s * scale, height, left=left, color=colour, hatch="//",
                    edgecolor="white", label=label if i == 0 else None)
            left += value_s * scale
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.axvline(100, color="black", linewidth=0.8)
    ax.set_xlabel("share of the measured step time (%)")
    ax.set_title("Step time: simulated by cause (upper bar) vs measured per stage (lower bar, hatched)")
    ax.legend(fontsize=7, ncol=4, loc="lower left", bbox_to_anchor=(0.0, 1.04), borderaxespad=0.0)
    return _png(fig)


def kernel_class(name: str) -> str:
    """A short class for a profiled kernel's (long, templated) name; short names stay as they are."""
    return name if len(name) <= 28 else classify_kernel(name)


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


def extrapolation_png(labels: list[str], tokens_per_s: list[float], error_fractions: list[float],
                      claims: list[float | None]) -> bytes:
    """Predicted tokens/s (error bar: each prediction's own band, none where it has none) beside the
    experiment files' claims; the legend sits above the axes so it covers no bar."""
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(labels) + 2), 4.8))
    positions = list(range(len(labels)))
    ax.bar([p - 0.2 for p in positions], tokens_per_s, 0.4, color="tab:blue",
           label="calibrated simulator (error bar: held-out band of its regime)")
    banded = [(p, t, t * e) for p, t, e in zip(positions, tokens_per_s, error_fractions, strict=True) if e > 0]
    if banded:  # no bar at all where a prediction has no band (not a zero-length one)
        ax.errorbar([p - 0.2 for p, _, _ in banded], [t for _, t, _ in banded], yerr=[e for _, _, e in banded],
                    fmt="none", ecolor="black", capsize=4)
    claimed = [c if c is not None else 0.0 for c in claims]
    ax.bar([p + 0.2 for p in positions], claimed, 0.4, color="tab:red", alpha=0.7, label="claimed (experiment file)")
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, fontsize=7, rotation=20, ha="right")
    ax.set_ylabel("tokens/s")
    ax.set_title("Beyond the measured scale: predicted vs claimed", pad=28)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def bands_png(checks: tuple[BandCheck, ...], measured_s: dict[str, float]) -> bytes:
    """Predicted against measured per family (one-GPU runs) or plan kind (multi-GPU runs), each run with
    the band it carried (an error bar of +- the band around the prediction; crosses: no band)."""
    groups: dict[str, list[BandCheck]] = {}
    for check in checks:
        groups.setdefault(check.family or check.plan_kind, []).append(check)
    names = sorted(groups)
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names, strict=False):
        members = groups[name]
        measured = [measured_s[c.key] * MS_PER_S for c in members]
        predicted = [m * (1 + c.error) for m, c in zip(measured, members, strict=True)]
        for m, p, c in zip(measured, predicted, members, strict=True):
            if c.half_width is None:
                ax.scatter([m], [p], marker="x", color="tab:red", s=30, zorder=3)
            else:
                inside = c.covered
                ax.errorbar([m], [p], yerr=[[p * c.half_width], [p * c.half_width]], fmt="o", markersize=4,
                            color="tab:blue" if inside else "tab:orange", capsize=2, zorder=2)
        low, high = min(measured + predicted) * 0.7, max(measured + predicted) * 1.4
        ax.plot([low, high], [low, high], color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        covered = sum(1 for c in members if c.covered)
        banded = sum(1 for c in members if c.half_width is not None)
        ax.set_title(f"{name}: {covered}/{banded} inside" + (f", {len(members) - banded} no band"
                                                             if banded < len(members) else ""), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.tick_params(labelsize=7)
    fig.supxlabel("measured step time (ms)")
    fig.supylabel("held-out predicted step time (ms)")
    fig.suptitle("Held-out predictions with the band each carried (blue: inside, orange: outside, "
                 "red x: no band promised)", fontsize=10)
    return _png(fig)
