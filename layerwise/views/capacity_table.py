"""``layerwise capacity``'s ranked table and its summary lines (terminal text)."""

from __future__ import annotations

from layerwise.terminal.table import render_table
from serving.slo_flags import slo_flag_text
from sim.capacity.options import FEWEST_GPUS
from sim.capacity.result import RESOLVED, CapacityResult, Finding

MS_PER_S = 1e3


def _ms(value_s: float | None) -> str:
    return "-" if value_s is None else f"{value_s * MS_PER_S:,.1f}"


def _settings(finding: Finding) -> str:
    knobs = finding.deployment.knobs
    chunked = "chunked" if knobs.chunked_prefill else "no chunking"
    return f"seqs {knobs.max_num_seqs}, tokens {knobs.max_num_batched_tokens}, {chunked}"


def _rank(finding: Finding) -> str:
    return f"={finding.rank}" if finding.tied else str(finding.rank)


def capacity_rows(result: CapacityResult) -> tuple[list[str], list[list[str]]]:
    headers = ["#", "GPUs", "kind", "plan", "replicas", "router", "settings", "req/s", "per GPU", "p99 TTFT ms",
               "p99 TPOT ms", "band"]
    rows = []
    for f in result.ranked:
        d = f.deployment
        at = f.at_capacity
        rows.append([_rank(f), str(d.gpus), "disagg" if d.decode_plan is not None else "agg", d.describe_plan(),
                     d.describe_replicas(), d.router if d.replicas > 1 or d.decode_plan is not None else "-",
                     _settings(f), f"{f.capacity_per_s:,.3g}" if f.capacity_per_s is not None else "-",
                     f"{f.per_gpu:,.3g}" if f.per_gpu is not None else "-",
                     _ms(None if at is None else at.latency_s("ttft_p99")),
                     _ms(None if at is None else at.latency_s("tpot_p99")), f.band])
    return headers, rows


def _header(result: CapacityResult) -> str:
    o = result.options
    slos = ", ".join(slo_flag_text(s) for s in o.slos.slos)
    c = result.counts
    return (f"capacity: {result.model} on {result.cluster} ({result.experiment}), {o.objective.describe()}, "
            f"SLOs {slos}, within {o.gpu_budget} GPUs, resolution {o.resolution:.1%}; cost model: "
            f"{result.parameters}.\nSpace: {c.deployments:,} deployments; {c.infeasible:,} cannot meet the SLOs "
            f"even unloaded or cannot hold every request, {c.pruned_by_bound:,} pruned by their capacity bound, "
            f"{c.below_threshold:,} stopped below the top {o.top}, {c.resolved:,} resolved. "
            f"{c.probes_simulated:,} simulations ({c.probes_stopped_early:,} stopped early, "
            f"{c.iterations_simulated:,} iterations), {c.probes_stood_in:,} verdicts reused from identical runs; "
            f"{result.runner}, {result.wall_s:.1f} s.")


def _best_line(result: CapacityResult) -> str:
    best = result.best
    if best is None:
        return "BEST: none: no deployment of the space meets the SLOs" + (
            f" at {result.options.objective.rate_per_s:g} requests/s within {result.options.gpu_budget} GPUs"
            if result.options.objective.kind == FEWEST_GPUS else "")
    d = best.deployment
    ties = [f for f in result.ties_for_best if f is not best]
    tied = f" (tied at this resolution with {len(ties)} other{'s' if len(ties) > 1 else ''})" if ties else ""
    assert best.capacity_per_s is not None and best.per_gpu is not None
    upper = best.capacity_per_s * (1 + result.options.resolution)
    return (f"BEST{tied}: {d.describe_plan()} x {d.describe_replicas()} on {d.gpus} GPU{'s' if d.gpus > 1 else ''}, "
            f"{_settings(best)}: meets every SLO at {best.capacity_per_s:,.4g} requests/s ({best.per_gpu:,.4g} per "
            f"GPU), not at {upper:,.4g}.")


def render_capacity(result: CapacityResult) -> str:
    headers, rows = capacity_rows(result)
    lines = [_header(result), ""]
    lines.append(render_table(headers, rows) if rows else "(no deployment resolved)")
    lines += ["", _best_line(result)]
    best = result.best
    if best is not None:
        lines.append(f"RESTS ON: per-iteration kernel times {best.band_text}; {result.host_time_note}; serving "
                     f"latencies themselves are unvalidated until measured serving runs are compared")
    if result.rejected_over_max_len:
        lines.append(f"({result.rejected_over_max_len} of {result.requests} requests exceed max_model_len and are "
                     f"rejected by every deployment alike)")
    for note in result.notes:
        lines.append(f"(not in the space: {note})")
    if result.crossover_line:
        lines += ["", result.crossover_line.replace("Crossover (", "CROSSOVER (", 1)]
    return "\n".join(lines)


def status_summary(result: CapacityResult) -> dict[str, int]:
    """How many deployments ended in each status (for --json and tests)."""
    counts: dict[str, int] = {}
    for f in (*result.ranked, *result.others):
        status = f.status.split(":")[0] if not f.status.startswith(RESOLVED) else RESOLVED
        counts[status] = counts.get(status, 0) + 1
    return counts
