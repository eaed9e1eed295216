"""The main job's table: one block per (model, cluster), one row per plan role (terminal text)."""

from __future__ import annotations

from layerwise.question.cases import CLUSTER_WORDS, ROLES, CaseResult
from layerwise.terminal.table import render_table
from sim.search.result import Candidate
from topology.units import format_bytes, format_seconds

ROLE_WORDS = {
    "paper: baseline": "paper's baseline, as stated",
    "paper: layer-wise": "paper's layer-wise, as stated",
    "tp-pp family": "TP x PP family at its best",
    "layer-wise family": "layer-wise family at its best",
    "search": "best plan found (search)",
}
COST_WORDS = {"compute": "arithmetic", "weights": "weights", "kv_cache": "KV cache", "activations": "activations",
              "launch": "launches", "communication": "communication", "bubble": "bubbles"}
HEADERS = ["plan", "GPUs", "tokens/s", "per GPU", "TPOT", "1/TPS", "comm/batch", "paper", "L2 fit",
           "dominant cost", "unvalidated"]
FIT_WORDS = {"all stages fit": "all", "no stage fits": "none"}


def _same_as(result: CaseResult, role: str, candidate: Candidate) -> str | None:
    """The earlier role this candidate already fills (the search's best is often a family's best)."""
    for earlier in ROLES[:ROLES.index(role)]:
        other = result.candidate(earlier)
        if other is not None and other.layout == candidate.layout:
            return earlier
    return None


def unvalidated_cell(candidate: Candidate) -> str:
    return ", ".join(SHORT_WORDS[c] for c in candidate.unvalidated) or "-"


SHORT_WORDS = {"kernels": "kernels", "allreduce": "all-reduce", "p2p": "p2p", "cross-node": "cross-node"}


def band_note(result: CaseResult) -> str:
    """What every row's prediction rests on (one line under the block)."""
    search = result.search
    assert search is not None
    parts = [f"tokens/s ±{search.band.half_width:.1%} where only kernels matter (90% of held-out {search.band.regime} "
             f"errors on {search.band.gpu}, {search.band.runs} runs)" if search.band is not None
             else "no validation band"]
    parts.append("1/TPS is the paper's TPOT; TPOT is the real time between a sequence's tokens; "
                 "'unvalidated': the parts of the step no run has measured (p2p: point-to-point sends)")
    return "Note: " + "; ".join(parts) + "."


def _row(result: CaseResult, role: str, candidate: Candidate | None) -> list[str]:
    experiment = result.experiment
    assert experiment is not None
    label = ROLE_WORDS[role]
    plan_name = role.split(": ", 1)[1] if role.startswith("paper: ") else None
    claim = experiment.paper_claims_tokens_per_s.get(plan_name or "") if result.claims_apply else None
    claimed_events = experiment.paper_claims_events_per_batch.get(plan_name or "")
    if candidate is None:
        return [f"{label}: does not run", "-", "-", "-", "-", "-", "-", f"{claim:,.0f}" if claim else "-",
                "-", "-", "-"]
    same = _same_as(result, role, candidate)
    shown = f"{label}: = {ROLE_WORDS[same]}" if same else f"{label}: {candidate.layout.describe()}"
    p = candidate.prediction
    events = f"{p.events_per_batch:.0f}" if p.events_per_batch is not None else "-"
    if claimed_events is not None:
        events += f" (paper {claimed_events:.0f})"
    share = p.breakdown_s.get(p.dominant_cost or "", 0.0) / p.step_s if p.dominant_cost else 0.0
    return [shown, str(candidate.gpus), f"{p.tokens_per_s:,.0f}", f"{candidate.tokens_per_s_per_gpu:,.0f}",
            format_seconds(p.tpot_s), format_seconds(1.0 / p.tokens_per_s), events,
            f"{claim:,.0f}" if claim else "-", _l2_cell(candidate),
            f"{COST_WORDS.get(p.dominant_cost or '', p.dominant_cost)} {share:.0%}" if p.dominant_cost else "-",
            unvalidated_cell(candidate)]


def _l2_cell(candidate: Candidate) -> str:
    p = candidate.prediction
    if p.l2_tightest is None:
        return "-"
    weights, capacity, _ = p.l2_tightest
    relation = "<=" if weights <= capacity else ">"
    fit = FIT_WORDS.get(p.l2_fit or "", p.l2_fit)
    return f"{fit}: W {format_bytes(weights)} {relation} C {format_bytes(capacity)}"


def render_case(result: CaseResult) -> str:
    case = result.case
    head = f"{case.model} on {case.cluster} ({CLUSTER_WORDS.get(case.cluster, case.cluster)})"
    if result.search is None:
        return f"{head}: does not run: {result.error}"
    rows = [_row(result, role, result.candidate(role)) for role in ROLES]
    return f"{head}\n{render_table(HEADERS, rows)}\n{band_note(result)}"
