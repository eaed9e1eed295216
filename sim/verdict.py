"""The main job's verdict paragraph, computed from the results (no fixed wording of outcomes)."""

from __future__ import annotations

from sim.table import Row
from topology.format import format_bytes
from topology.results import RunResult

COST_WORDS = {
    "compute": "arithmetic", "weights": "reading weights", "kv_cache": "reading the KV cache",
    "activations": "moving activations", "launch": "kernel launches", "communication": "communication",
    "bubble": "pipeline bubbles (idle GPUs)",
}


def _find(rows: list[Row], model: str, cluster: str, plan_name: str) -> RunResult | None:
    for row in rows:
        if (row.model, row.cluster, row.plan_name) == (model, cluster, plan_name):
            return row.result
    return None


def _cost(result: RunResult) -> str:
    m = result.metrics
    key = m.extra["dominant_cost"]
    return f"{COST_WORDS[key]} ({m.extra['step_breakdown_s'][key] / m.step_time_s:.0%} of the step)"


def _compare(base: RunResult, other: RunResult) -> str:
    b, o = base.metrics.tokens_per_s, other.metrics.tokens_per_s
    if o >= b:
        return f"layer-wise wins by {o / b:.2f}x ({o:,.0f} vs {b:,.0f} tokens/s)"
    return f"the baseline wins by {b / o:.2f}x ({b:,.0f} vs {o:,.0f} tokens/s)"


def verdict(rows: list[Row], model: str, cluster: str, baseline: str, layerwise: str,
            extra_plan: str | None, claims: dict[str, float]) -> str:
    """One paragraph for the headline case, then one sentence per other (model, cluster) case."""
    base, lw = _find(rows, model, cluster, baseline), _find(rows, model, cluster, layerwise)
    if base is None or lw is None:
        return "VERDICT: the headline plans did not both run; see the table."
    parts = [f"VERDICT: for {model} on {cluster}, {_compare(base, lw)}."]
    if claims.get(baseline) and claims.get(layerwise):
        parts.append(f"The paper claims the opposite order: {claims[layerwise]:,.0f} vs {claims[baseline]:,.0f} "
                     f"tokens/s (+{claims[layerwise] / claims[baseline] - 1:.0%} for layer-wise).")
    parts.append(f"The baseline's step is dominated by {_cost(base)}; layer-wise's by {_cost(lw)}.")
    l2 = lw.metrics.extra["l2"]
    fitting = [e for e in l2 if e["fit"] != "none"]
    if fitting:
        parts.append(f"{len(fitting)} of {len(l2)} layer-wise partitions keep weights in L2.")
    else:
        worst = min(l2, key=lambda e: e["weights_bytes"])
        parts.append(f"No partition fits in L2: the smallest holds {format_bytes(worst['weights_bytes'])} of weights "
                     f"against {format_bytes(worst['capacity_bytes'])} usable, and each pass also streams "
                     f"{format_bytes(worst['streamed_bytes_per_pass'])} of KV cache and activations.")
    if extra_plan is not None:
        extra = _find(rows, model, cluster, extra_plan)
        if extra is not None:
            parts.append(f"Beyond the seed, layer-wise with {extra.metrics.extra['microbatches']} microbatches "
                         f"reaches {extra.metrics.tokens_per_s:,.0f} tokens/s, so against the baseline "
                         f"{_compare(base, extra)}.")
    if base.metrics.tpot_s is not None and lw.metrics.tpot_s is not None:
        parts.append(f"The paper's TPOT is 1/TPS ({base.metrics.paper_tpot_s * 1e3:.3f} and "
                     f"{lw.metrics.paper_tpot_s * 1e3:.3f} ms here); the real time between a sequence's tokens "
                     f"is {base.metrics.tpot_s * 1e3:.2f} and {lw.metrics.tpot_s * 1e3:.2f} ms.")
    comm_b = base.metrics.extra["communication"]["events_per_batch"]
    comm_l = lw.metrics.extra["communication"]["events_per_batch"]
    parts.append(f"Communication events per batch: {comm_b:.0f} for the baseline and {comm_l:.0f} for layer-wise "
                 f"(the seed counts 160 and 15).")
    others = sorted({(r.model, r.cluster) for r in rows} - {(model, cluster)})
    for other_model, other_cluster in others:
        ob, ol = _find(rows, other_model, other_cluster, baseline), _find(rows, other_model, other_cluster, layerwise)
        if ob is not None and ol is not None:
            parts.append(f"{other_model} on {other_cluster}: {_compare(ob, ol)}.")
        else:
            parts.append(f"{other_model} on {other_cluster}: a plan does not run (see the table).")
    return " ".join(parts)
