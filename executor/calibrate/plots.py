"""One PNG per calibration profile: GEMM efficiency, L2 hot/cold, collectives (if measured).

matplotlib is imported only when a plot is drawn (:func:`plot_profile`): the executor, and
calibration without ``--plot``, run on machines that do not have it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from executor.calibrate.fit import best_gemm_flops_per_s, collective_factor, gemm_efficiency
from topology.atomic_io import write_bytes_atomic
from topology.profile import HardwareProfile

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def size_label(nbytes: float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1 (so 256 KiB is not "0 MiB")."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes:.0f} B"


def _section(profile: HardwareProfile, name: str) -> dict[str, Any] | None:
    value = profile.raw.get(name)
    return value if isinstance(value, dict) and "error" not in value and "skipped" not in value else None


def _plot_gemm(ax: Axes, profile: HardwareProfile) -> None:
    points = profile.params.gemm_points
    best = best_gemm_flops_per_s(points)
    if not points or not best:
        ax.text(0.5, 0.5, "GEMM: not measured", ha="center", transform=ax.transAxes)
        return
    table = gemm_efficiency(points, best)  # against the measured best (the rate the simulator uses)
    for n, k in sorted({(e.n, e.k) for e in table}, key=lambda s: -s[0] * s[1]):
        rows = [e for e in table if (e.n, e.k) == (n, k)]
        ax.plot([e.m for e in rows], [e.flops_fraction for e in rows], marker=".", linewidth=1,
                label=f"{k}x{n}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("rows M")
    ax.set_ylabel("achieved / best measured FLOP/s")
    sheet = (profile.environment.get("datasheet") or {}).get("dense_bf16_flops_per_s")
    ax.set_title(f"GEMM rate / best measured {best / 1e12:.3g} TFLOP/s"
                 + (f" (datasheet {float(sheet) / 1e12:.0f})" if sheet else ""))
    ax.legend(fontsize=5, ncol=2, title="k x n", title_fontsize=6)
    ax.grid(True, which="both", alpha=0.3)


def _plot_l2(ax: Axes, profile: HardwareProfile) -> None:
    l2 = _section(profile, "l2")
    if not l2 or not l2.get("points"):
        ax.text(0.5, 0.5, "L2: not measured", ha="center", transform=ax.transAxes)
        return
    points = sorted(l2["points"], key=lambda p: p["weight_bytes"])
    sizes_mib = [p["weight_bytes"] / 2**20 for p in points]
    ax.plot(sizes_mib, [p["hot_bw_bytes_per_s"] / 1e12 for p in points], marker="o", label="hot (same weight)")
    ax.plot(sizes_mib, [p["cold_bw_bytes_per_s"] / 1e12 for p in points], marker="s", label="cold (rotated)")
    usable = profile.params.l2_usable_bytes
    if usable:
        ax.axvline(usable / 2**20, color="k", linestyle="--", linewidth=1, label=f"usable {size_label(usable)}")
    nominal = l2.get("nominal_l2_bytes")
    if nominal:
        ax.axvline(nominal / 2**20, color="grey", linestyle=":", linewidth=1,
                   label=f"nominal {size_label(nominal)}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("weight size (MiB)")
    ax.set_ylabel("weight bytes / time (TB/s)")
    ax.set_title(f"L2 hot vs cold, skinny GEMM ({points[0]['rows']} rows)")
    ax.legend(fontsize=6)
    ax.grid(True, which="both", alpha=0.3)


def _plot_collectives(ax: Axes, profile: HardwareProfile) -> None:
    data = _section(profile, "collectives")
    if not data or not data.get("samples"):
        note = profile.raw.get("collectives")
        label = note.get("skipped", "not measured") if isinstance(note, dict) else "not measured"
        ax.text(0.5, 0.5, f"collectives: {label}", ha="center", transform=ax.transAxes)
        return
    keys = sorted({(s["op"], s["group_size"]) for s in data["samples"]})
    for op, group_size in keys:
        rows = sorted((s for s in data["samples"] if (s["op"], s["group_size"]) == (op, group_size)),
                      key=lambda s: s["nbytes"])
        factor = collective_factor(op, group_size)
        line = ax.plot([s["nbytes"] for s in rows], [factor * s["nbytes"] / s["time_s"] / 1e9 for s in rows],
                       marker=".", label=f"{op} n={group_size}")
        fit = profile.params.collective(op, group_size)
        if fit and fit.group_size == group_size:
            model_bw = [factor * s["nbytes"] / (fit.latency_s + factor * s["nbytes"] / fit.bw_bytes_per_s) / 1e9
                        for s in rows]
            ax.plot([s["nbytes"] for s in rows], model_bw, linestyle="--", linewidth=0.8, color=line[0].get_color())
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("message bytes")
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.set_title("collectives: measured (dots), latency + bytes/bw fit (dashed)")
    ax.legend(fontsize=6)
    ax.grid(True, which="both", alpha=0.3)


def _plot_attention(ax: Axes, profile: HardwareProfile) -> None:
    points = [p for p in profile.params.attention_points if p.new_tokens == 1]
    if not points:
        ax.text(0.5, 0.5, "attention: not measured", ha="center", transform=ax.transAxes)
        return
    for heads, batch in sorted({(p.heads, p.batch) for p in points}):
        rows = sorted((p for p in points if (p.heads, p.batch) == (heads, batch)), key=lambda p: p.context_len)
        ax.plot([p.context_len for p in rows], [p.time_s * 1e6 for p in rows], marker=".", linewidth=1,
                label=f"{heads}h b={batch}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length")
    ax.set_ylabel("time (us)")
    ax.set_title("decode attention (SDPA)")
    ax.legend(fontsize=5, ncol=2)
    ax.grid(True, which="both", alpha=0.3)


def plot_profile(profile: HardwareProfile, png_path: str | Path) -> Path:
    """Render the profile's four panels to ``png_path`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    _plot_gemm(axes[0][0], profile)
    _plot_l2(axes[0][1], profile)
    _plot_collectives(axes[1][0], profile)
    _plot_attention(axes[1][1], profile)
    copy, read = profile.params.hbm_bw_bytes_per_s, profile.params.hbm_read_bw_bytes_per_s
    fig.suptitle(f"{profile.gpu_name} x {profile.gpu_count}  ({profile.created_utc})"
                 + (f"  HBM copy {copy / 1e12:.2f} TB/s" if copy else "")
                 + (f", read {read / 1e12:.2f} TB/s" if read else ""))
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return write_bytes_atomic(png_path, buffer.getvalue())
