"""Terminal rendering of simulation results: a table and a computed verdict (edges only)."""

from __future__ import annotations

from dataclasses import dataclass

from topology.format import format_bytes, format_seconds, render_table
from topology.results import RunResult


@dataclass(frozen=True)
class Row:
    """One simulated (or unrunnable) plan of one model on one cluster."""

    model: str
    cluster: str
    plan_name: str
    label: str  # the plan as shown (what it is, and whether it is beyond the seed)
    result: RunResult | None
    paper_tokens_per_s: float | None
    error: str | None = None  # why it did not run (e.g. does not fit HBM)


HEADERS = ["model", "cluster", "plan", "tokens/s", "paper", "step", "TPOT (real)", "1/TPS (paper's TPOT)",
           "comm events/batch (seed)", "L2 fit, hit", "dominant cost"]


def _communication_cell(result: RunResult) -> str:
    comm = result.metrics.extra["communication"]
    claimed = comm.get("seed_claimed_events_per_batch")
    ours = f"{comm['events_per_batch']:.0f}"
    return f"{ours} ({claimed})" if claimed is not None else ours


def render_rows(rows: list[Row]) -> str:
    body = []
    for row in rows:
        claim = f"{row.paper_tokens_per_s:,.0f}" if row.paper_tokens_per_s else "-"
        if row.result is None:
            body.append([row.model, row.cluster, row.label, "does not run", claim, "-", "-", "-", "-", "-",
                         row.error or ""])
            continue
        m = row.result.metrics
        breakdown = m.extra["step_breakdown_s"]
        dominant = m.extra["dominant_cost"]
        share = breakdown[dominant] / m.step_time_s if m.step_time_s else 0.0
        body.append([
            row.model, row.cluster, row.label, f"{m.tokens_per_s:,.0f}", claim, format_seconds(m.step_time_s),
            format_seconds(m.tpot_s) if m.tpot_s is not None else f"TTFT {format_seconds(m.ttft_s)}",
            format_seconds(m.paper_tpot_s),
            _communication_cell(row.result), _l2_cell(row.result), f"{dominant} {share:.0%}",
        ])
    return render_table(HEADERS, body)


def _l2_cell(result: RunResult) -> str:
    entries = result.metrics.extra["l2"]
    fits = {e["fit"] for e in entries}
    fit = fits.pop() if len(fits) == 1 else "mixed"
    hit = sum(e["hit_fraction"] for e in entries) / len(entries)
    largest = max(entries, key=lambda e: e["weights_bytes"])
    relation = "<=" if largest["weights_bytes"] <= largest["capacity_bytes"] else ">"
    return (f"{fit} {hit:.0%}: W {format_bytes(largest['weights_bytes'])} {relation} "
            f"C {format_bytes(largest['capacity_bytes'])}")
