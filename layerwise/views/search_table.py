"""``layerwise search``'s ranked table and its summary lines (terminal text)."""

from __future__ import annotations

from layerwise.terminal.table import render_table
from sim.search.result import Candidate, SearchResult
from topology.accuracy import COMPONENT_WORDS
from topology.units import format_seconds

COST_WORDS = {"compute": "arithmetic", "weights": "weights", "kv_cache": "KV cache", "activations": "activations",
              "launch": "launches", "communication": "communication", "bubble": "bubbles"}


def _stage_text(result: SearchResult) -> str:
    best = result.best
    parts = []
    for stage in best.plan.stages:
        devices = stage.devices[0] if len(stage.devices) == 1 else f"{stage.devices[0]}-{stage.devices[-1]}"
        parts.append(f"layers {stage.layer_start}-{stage.layer_stop - 1} on {devices} (TP{stage.tp_degree})")
    return "; ".join(parts)


def _band_cell(candidate: Candidate) -> str:
    if candidate.band is None:
        return "outside measured shapes" if candidate.band_note.startswith("outside") else "none"
    return f"±{candidate.band.half_width:.1%}" + (" (partial)" if candidate.unvalidated else "")


def render_search(result: SearchResult) -> str:
    best = result.best.prediction.tokens_per_s
    decode = result.phase == "decode"
    headers = ["#", "plan", "GPUs", "tokens/s", "per GPU", "TPOT" if decode else "TTFT", "gap", "dominant cost",
               "band", "unvalidated", "origin"]
    rows = []
    for rank, c in enumerate(result.ranked, start=1):
        p = c.prediction
        dominant = p.dominant_cost
        share = p.breakdown_s.get(dominant, 0.0) / p.step_s if dominant else 0.0
        ties = f" (+{c.ties} ties)" if c.ties else ""
        rows.append([str(rank), c.layout.describe() + ties, str(c.gpus), f"{p.tokens_per_s:,.0f}",
                     f"{c.tokens_per_s_per_gpu:,.0f}", format_seconds(p.tpot_s if decode else p.ttft_s),
                     "best" if rank == 1 else f"-{1 - p.tokens_per_s / best:.1%}",
                     f"{COST_WORDS.get(dominant or '', dominant)} {share:.0%}" if dominant else "-",
                     _band_cell(c),
                     ", ".join(COMPONENT_WORDS[u] for u in c.unvalidated) or "-", c.origin])
    o = result.options
    limits = [f"GPUs <= {o.gpus}"] if o.gpus else []
    limits += [f"TPOT <= {o.max_tpot_s * 1e3:g} ms"] if o.max_tpot_s is not None else []
    limits += [f"TTFT <= {o.max_ttft_s * 1e3:g} ms"] if o.max_ttft_s is not None else []
    header = (f"search: {result.model} on {result.cluster}, {result.phase}, {result.parameters}"
              f"{', ' + ', '.join(limits) if limits else ''}. Space: {result.space_size:,} layouts "
              f"(family {o.family}; HBM fit checked as the DP goes); the twin expanded {result.states_visited:,} DP "
              f"states, the events ran {len(result.ranked) + len(result.over_limits)} finalists, "
              f"{result.wall_s:.1f} s.")
    b = result.best
    p = b.prediction
    latency = f"TPOT {format_seconds(p.tpot_s)}" if decode else f"TTFT {format_seconds(p.ttft_s)}"
    lines = [header, "", render_table(headers, rows), "",
             f"BEST: {b.layout.describe()} on {b.gpus} GPU{'s' if b.gpus > 1 else ''}: {p.tokens_per_s:,.0f} tokens/s "
             f"({b.tokens_per_s_per_gpu:,.0f} per GPU), {latency}. {_stage_text(result)}.",
             f"UNCERTAINTY: {result.resolution}"]
    if result.over_limits:
        lines.append(f"({len(result.over_limits)} finalists were over the limits under the events: "
                     + ", ".join(c.layout.describe() for c in result.over_limits) + ")")
    return "\n".join(lines)


