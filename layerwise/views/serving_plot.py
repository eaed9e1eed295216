"""``layerwise simulate --plot``: CDFs of TTFT and TPOT per plan, with the SLO bounds as vertical lines."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter

from serving.requests import RequestRecord
from serving.slo import SloSpec

MS_PER_S = 1e3


def _cdf(ax: plt.Axes, values_s: Sequence[float], label: str) -> None:
    if not values_s:
        return
    ordered = np.sort(np.asarray(values_s)) * MS_PER_S
    ax.step(ordered, np.arange(1, len(ordered) + 1) / len(ordered), where="post", label=label)


def cdf_png(runs: dict[str, Sequence[RequestRecord]], slos: SloSpec, title: str) -> bytes:
    """Two panels (TTFT, TPOT), one step curve per plan, dashed lines at each SLO bound."""
    import io

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, label in ((axes[0], "ttft", "TTFT"), (axes[1], "tpot", "TPOT")):
        for name, records in runs.items():
            values = [getattr(r, f"{metric}_s") for r in records]
            _cdf(ax, [v for v in values if v is not None], name)
        for slo in slos.slos:
            if slo.metric == metric:
                ax.axvline(slo.bound_s * MS_PER_S, color="black", linestyle="--", linewidth=1)
                ax.text(slo.bound_s * MS_PER_S, 0.02, f" SLO {slo.percentile}", fontsize=8, rotation=90,
                        va="bottom")
                ax.axhline(slo.quantile_percent / 100, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlabel(f"{label} (ms)")
        ax.set_ylabel("fraction of requests")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        ax.set_ylim(0, 1.01)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"{label}: cumulative distribution")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
