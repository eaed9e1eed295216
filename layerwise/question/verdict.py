"""The main job's verdict, computed from the searches (no outcome is written in advance)."""

from __future__ import annotations

from layerwise.question.cases import CaseResult
from sim.search.result import Candidate
from topology.accuracy import COMPONENT_WORDS, COMPONENTS
from topology.units import format_bytes

COST_WORDS = {
    "compute": "arithmetic", "weights": "reading weights", "kv_cache": "reading the KV cache",
    "activations": "moving activations", "launch": "kernel launches", "communication": "communication",
    "bubble": "pipeline bubbles",
}
ORIGIN_WORDS = {"search": "the search", "tp-pp family": "the TP x PP family's best",
                "layer-wise family": "the layer-wise family's best"}


def _tps(candidate: Candidate) -> str:
    return f"{candidate.prediction.tokens_per_s:,.0f}"


def _cost(candidate: Candidate) -> str:
    p = candidate.prediction
    key = p.dominant_cost or "bubble"
    return f"{COST_WORDS[key]} ({p.breakdown_s.get(key, 0.0) / p.step_s:.0%} of the step)"


def _share(candidate: Candidate, key: str) -> float:
    p = candidate.prediction
    return p.breakdown_s.get(key, 0.0) / p.step_s


def _families(result: CaseResult) -> str:
    tp_pp, layer_wise = result.candidate("tp-pp family"), result.candidate("layer-wise family")
    if tp_pp is None or layer_wise is None:
        return "One family has no plan that runs; see the table."
    a, b = tp_pp.prediction.tokens_per_s, layer_wise.prediction.tokens_per_s
    winner, ratio = ("the TP x PP family", a / b) if a >= b else ("the layer-wise family", b / a)
    return (f"Each family at its best: TP x PP {tp_pp.layout.describe()} {_tps(tp_pp)} tokens/s, layer-wise "
            f"{layer_wise.layout.describe()} {_tps(layer_wise)}: {winner} wins by {ratio:.2f}x.")


KERNEL_COSTS = ("compute", "weights", "kv_cache", "activations", "launch")


def _largest_difference(result: CaseResult) -> str | None:
    """The part of the busiest GPU's step that differs most between the two families' best plans."""
    tp_pp, layer_wise = result.candidate("tp-pp family"), result.candidate("layer-wise family")
    if tp_pp is None or layer_wise is None:
        return None
    a, b = tp_pp.prediction.breakdown_s, layer_wise.prediction.breakdown_s
    return max(sorted(set(a) | set(b)), key=lambda k: abs(a.get(k, 0.0) - b.get(k, 0.0)))


def _why(result: CaseResult) -> str:
    key = _largest_difference(result)
    tp_pp, layer_wise = result.candidate("tp-pp family"), result.candidate("layer-wise family")
    if key is None or tp_pp is None or layer_wise is None:
        return ""
    a, b = tp_pp.prediction.breakdown_s.get(key, 0.0), layer_wise.prediction.breakdown_s.get(key, 0.0)
    text = (f"The largest difference between them is {COST_WORDS[key]}: {a * 1e3:.2f} ms of the TP x PP best's step "
            f"against {b * 1e3:.2f} ms of the layer-wise best's (busiest GPU).")
    if key == "weights":
        reads = [(c.layout.microbatches, c.plan.stages[0].footprint.weights_bytes) for c in (tp_pp, layer_wise)]
        text += (" Every microbatch pass re-reads its stage's weights: per step a GPU reads "
                 f"{reads[0][0]} x {format_bytes(reads[0][1])} in the TP x PP best and "
                 f"{reads[1][0]} x {format_bytes(reads[1][1])} in the layer-wise best, which needs its many "
                 f"microbatches to keep {layer_wise.layout.num_stages} stages busy.")
    return text


def _paper(result: CaseResult) -> str:
    experiment = result.experiment
    base, lw = result.candidate("paper: baseline"), result.candidate("paper: layer-wise")
    if experiment is None or base is None or lw is None:
        return "One of the paper's plans does not run as stated; see the table."
    claims = experiment.paper_claims_tokens_per_s
    text = (f"As the paper states them, the baseline ({base.layout.describe()}) runs at {_tps(base)} tokens/s and "
            f"layer-wise ({lw.layout.describe()}) at {_tps(lw)}")
    if result.claims_apply and claims.get("baseline") and claims.get("layer-wise"):
        gain = claims["layer-wise"] / claims["baseline"] - 1
        text += (f"; the paper claims {claims['baseline']:,.0f} and {claims['layer-wise']:,.0f} "
                 f"({gain:+.0%} for layer-wise)")
    return text + f". Stated layer-wise is dominated by {_cost(lw)}; the stated baseline by {_cost(base)}."


def _l2(result: CaseResult) -> str:
    lw = result.candidate("paper: layer-wise")
    if lw is None or lw.prediction.l2_tightest is None:
        return ""
    weights, capacity, streamed = lw.prediction.l2_tightest
    if weights <= capacity:
        return f"The smallest layer-wise partition's weights fit in L2 ({format_bytes(weights)})."
    return (f"The premise fails: no layer-wise partition fits in L2; the smallest holds {format_bytes(weights)} of "
            f"weights against {format_bytes(capacity)} usable, and each pass also streams {format_bytes(streamed)} "
            "of KV cache and activations.")


def _rests_on(result: CaseResult, best: Candidate) -> str:
    search = result.search
    assert search is not None
    tp_pp, layer_wise = result.candidate("tp-pp family"), result.candidate("layer-wise family")
    parts = []
    if search.band is not None:
        parts.append(f"What this rests on: kernels and memory traffic are validated on one {search.band.gpu} "
                     f"(±{search.band.half_width:.1%} covers 90% of held-out {search.band.regime} errors over "
                     f"{search.band.runs} runs)")
    else:
        parts.append("What this rests on: datasheet parameters, with no validation band")
    unvalidated = [u for u in COMPONENTS if u != "kernels"
                   and any(c is not None and u in c.unvalidated for c in (best, tp_pp, layer_wise))]
    if unvalidated:
        words = ", ".join(COMPONENT_WORDS[u] for u in unvalidated)
        gpu = search.band.gpu if search.band is not None else "this GPU"
        parts.append(f"; {words} were never measured on {gpu} (no multi-GPU machine of it was lent)")
        if tp_pp is not None and layer_wise is not None:
            parts.append(f". Communication is {_share(tp_pp, 'communication'):.0%} of the TP x PP best's step and "
                         f"{_share(layer_wise, 'communication'):.0%} of the layer-wise best's")
            key = _largest_difference(result)
            if key in KERNEL_COSTS:
                parts.append(f"; the margin between the families comes mostly from {COST_WORDS[key]}, a part the "
                             "single-GPU runs did validate, but the figures of both still carry unmeasured "
                             "communication")
            else:
                parts.append("; the margin between the families comes mostly from communication, so it is a model "
                             "prediction, not a measurement")
    return "".join(parts) + "."


def headline(result: CaseResult) -> str:
    case = result.case
    best = result.candidate("search")
    if best is None:
        return f"VERDICT for {case.model} on {case.cluster}: no plan runs ({result.error})."
    tps = best.prediction
    found = " and ".join(ORIGIN_WORDS.get(o, o) for o in best.origin.split("; "))
    parts = [f"VERDICT for {case.model} on {case.cluster}: the fastest plan found is {best.layout.describe()} on "
             f"{best.gpus} GPUs, {tps.tokens_per_s:,.0f} tokens/s (TPOT {tps.step_s * 1e3:.2f} ms; {found}).",
             _families(result), _why(result), _paper(result), _l2(result)]
    base = result.candidate("paper: baseline")
    if base is not None and base.prediction.tpot_s is not None:
        parts.append(f"The paper's TPOT is 1/TPS ({1e3 / base.prediction.tokens_per_s:.3f} ms for the stated "
                     f"baseline); the real time between a sequence's tokens is {base.prediction.tpot_s * 1e3:.2f} ms.")
    parts.append(_rests_on(result, best))
    return " ".join(p for p in parts if p)


def one_line(result: CaseResult) -> str:
    case = result.case
    best = result.candidate("search")
    if best is None:
        return f"{case.model} on {case.cluster}: no plan runs."
    return f"{case.model} on {case.cluster}: best {best.layout.describe()} {_tps(best)} tokens/s. {_families(result)}"


def verdict(results: list[CaseResult]) -> str:
    return "\n\n".join([headline(results[0]), " ".join(one_line(r) for r in results[1:])])
