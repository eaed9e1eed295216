"""``layerwise simulate EXPERIMENT``'s table: one row per plan (terminal text).

The paper's figures appear only where the experiment file carries them for that plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from layerwise.terminal.table import render_table
from topology.results import RunResult
from topology.units import format_bytes, format_seconds


@dataclass(frozen=True)
class Row:
    """One simulated (or unrunnable) plan of one model on one cluster."""

    model: str
    cluster: str
    plan_name: str
    label: str  # the plan as shown
    result: RunResult | None
    paper_tokens_per_s: float | None  # the experiment file's claim for this plan, if any
    error: str | None = None  # why it did not run (e.g. does not fit HBM)
    paper_events_per_batch: float | None = None
    rests_on: str = ""  # the prediction's band and what no run validated


HEADERS = ["model", "cluster", "plan", "tokens/s", "paper", "step", "TPOT (real)", "1/TPS (paper's TPOT)",
           "comm events/batch", "L2 fit, hit", "dominant cost", "rests on"]


def _communication_cell(row: Row) -> str:
    assert row.result is not None
    simulation = row.result.metrics.simulation
    assert simulation is not None
    ours = f"{simulation.communication.events_per_batch:.0f}"
    return f"{ours} (paper {row.paper_events_per_batch:.0f})" if row.paper_events_per_batch is not None else ours


def render_rows(rows: list[Row]) -> str:
    body = []
    for row in rows:
        claim = f"{row.paper_tokens_per_s:,.0f}" if row.paper_tokens_per_s else "-"
        if row.result is None:
            body.append([row.model, row.cluster, row.label, "does not run", claim, "-", "-", "-", "-", "-",
                         row.error or "", ""])
            continue
        m = row.result.metrics
        assert m.simulation is not None
        breakdown = m.simulation.breakdown
        dominant = breakdown.dominant
        share = breakdown.seconds()[dominant] / m.step_time_s if m.step_time_s else 0.0
        body.append([
            row.model, row.cluster, row.label, f"{m.tokens_per_s:,.0f}", claim, format_seconds(m.step_time_s),
            format_seconds(m.tpot_s) if m.tpot_s is not None else f"TTFT {format_seconds(m.ttft_s)}",
            format_seconds(1.0 / m.tokens_per_s),
            _communication_cell(row), _l2_cell(row.result), f"{dominant} {share:.0%}", row.rests_on,
        ])
    return render_table(HEADERS, body)


def _l2_cell(result: RunResult) -> str:
    assert result.metrics.simulation is not None
    entries = result.metrics.simulation.residency
    fits = {e.fit for e in entries}
    fit = fits.pop() if len(fits) == 1 else "mixed"
    hit = sum(e.hit_fraction for e in entries) / len(entries)
    largest = max(entries, key=lambda e: e.weights_bytes)
    relation = "<=" if largest.weights_bytes <= largest.capacity_bytes else ">"
    weights, capacity = format_bytes(largest.weights_bytes), format_bytes(largest.capacity_bytes)
    return f"{fit} {hit:.0%}: W {weights} {relation} C {capacity}"
