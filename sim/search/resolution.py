"""Whether the simulator resolves the ranking at the top of a search, and what would (pure)."""

from __future__ import annotations

from sim.search.result import Candidate
from topology.accuracy import COMPONENT_WORDS, RegimeError

MEASUREMENT_OF = {
    "kernels": "a calibration profile of this GPU (`layerwise calibrate`) and runs to validate it",
    "allreduce": "all-reduce at the plans' TP degrees (`layerwise calibrate` on a node with that many GPUs)",
    "p2p": "point-to-point sends between GPUs of one node (`layerwise calibrate` on 2+ GPUs)",
    "cross-node": "sends and all-reduces across nodes (not measured by `layerwise calibrate`, which runs on one node)",
}


def _interval(candidate: Candidate, band: RegimeError | None) -> tuple[float, float]:
    value = candidate.prediction.tokens_per_s
    half = band.mape if band is not None and not candidate.unvalidated else 0.0
    return value * (1 - half), value * (1 + half)


def resolution_statement(ranked: list[Candidate], band: RegimeError | None) -> str:
    """One paragraph: is #1 ahead beyond the error it has earned, and which measurement would settle it."""
    if len(ranked) < 2:
        return "Only one plan meets the limits."
    best, second = ranked[0], ranked[1]
    lead = best.prediction.tokens_per_s / second.prediction.tokens_per_s - 1
    low_best, _ = _interval(best, band)
    overlapping = [c for c in ranked[1:] if _interval(c, band)[1] >= low_best]
    unvalidated = sorted({u for c in [best, *overlapping[:1]] for u in c.unvalidated},
                         key=list(COMPONENT_WORDS).index)
    differing = sorted({u for c in [best, second] for u in c.components}
                       - (set(best.components) & set(second.components)), key=list(COMPONENT_WORDS).index)
    parts = []
    if band is None:
        parts.append(f"#1 leads #2 by {lead:.1%} on unvalidated parameters: no held-out error band covers this "
                     "prediction, so the simulator does not settle the ranking.")
    elif overlapping:
        names = ", ".join(f"#{ranked.index(c) + 1}" for c in overlapping)
        parts.append(f"The simulator does not resolve #1 against {names}: their predictions lie within the "
                     f"±{band.mape:.1%} held-out {band.regime} band of each other.")
    elif unvalidated:
        parts.append(f"#1 leads #2 by {lead:.1%}, beyond the ±{band.mape:.1%} band of the validated parts, "
                     "but the lead rests on parts no run has validated.")
    else:
        parts.append(f"The simulator resolves the top: #1 leads #2 by {lead:.1%}, outside the ±{band.mape:.1%} "
                     f"held-out {band.regime} band.")
        return " ".join(parts)
    needs = [c for c in (differing or unvalidated) if c in unvalidated] or unvalidated
    if needs:
        parts.append("Measuring " + "; ".join(MEASUREMENT_OF[c] for c in needs) + " would resolve it, "
                     "as would running the top plans on the target GPUs (`layerwise search ... --confirm K`).")
    else:
        parts.append("Running the top plans on the target GPUs (`layerwise search ... --confirm K`) would resolve it.")
    return " ".join(parts)
