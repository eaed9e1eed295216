"""Whether the simulator resolves the ranking at the top of a search, and what would (pure)."""

from __future__ import annotations

from sim.search.result import Candidate
from topology.accuracy import COMPONENTS


def _interval(candidate: Candidate) -> tuple[float, float]:
    """The prediction with the band it has earned (none where a part of it is unvalidated)."""
    value = candidate.prediction.tokens_per_s
    band = candidate.band
    half = band.half_width if band is not None and not candidate.unvalidated else 0.0
    return value * (1 - half), value * (1 + half)


def _measurement(component: str, plans: list[Candidate]) -> str:
    if component == "kernels":
        return "this GPU's kernels (`layerwise calibrate`, then `layerwise validate` on measured runs)"
    if component == "allreduce":
        degrees = sorted({s.tp_degree for c in plans for s in c.plan.stages if s.tp_degree > 1})
        return f"all-reduce over {' and '.join(str(d) for d in degrees)} GPUs (`layerwise calibrate` on such a node)"
    if component == "p2p":
        return "point-to-point sends inside a node (`layerwise calibrate` on 2 or more GPUs)"
    return "transfers across nodes (two nodes; `layerwise calibrate` measures one)"


def resolution_statement(ranked: list[Candidate]) -> str:
    """Is #1 ahead by more than the error each plan has earned, and which measurement would settle it."""
    if len(ranked) < 2:
        return "Only one plan meets the limits."
    best, second = ranked[0], ranked[1]
    lead = best.prediction.tokens_per_s / second.prediction.tokens_per_s - 1
    low_best = _interval(best)[0]
    overlapping = [c for c in ranked[1:] if _interval(c)[1] >= low_best]
    top = [best, *(overlapping or [second])]
    unvalidated = [c for c in COMPONENTS if any(c in p.unvalidated for p in top)]
    bands = [c.band for c in top]
    widths = ", ".join(f"±{b.half_width:.1%}" for b in dict.fromkeys(b for b in bands if b is not None))
    if any(b is None for b in bands):
        note = next((c.band_note for c in top if c.band is None and c.band_note), "")
        head = (f"#1 leads #2 by {lead:.1%}, but no held-out error band covers "
                f"{'these predictions' if all(b is None for b in bands) else 'all of these predictions'}"
                + (f" ({note})" if note else "") + ", so the simulator does not settle the ranking.")
    elif overlapping:
        names = ", ".join(f"#{ranked.index(c) + 1}" for c in overlapping)
        head = (f"The simulator does not resolve #1 against {names}: they lie within their held-out bands "
                f"({widths}, each covering 90% of held-out errors) of each other.")
    elif unvalidated:
        head = (f"#1 leads #2 by {lead:.1%}; the held-out bands ({widths}) cover only what their runs exercised, "
                "and these predictions also rest on parts no run has validated.")
    else:
        return (f"The simulator resolves the top: #1 leads #2 by {lead:.1%}, outside their held-out bands "
                f"({widths}, each covering 90% of held-out errors).")
    run_them = "running the top plans (`layerwise search ... --confirm K` on the target GPUs)"
    if not unvalidated:
        return f"{head} {run_them[0].upper()}{run_them[1:]} would settle it."
    measure = "; ".join(_measurement(c, top) for c in unvalidated)
    return f"{head} Measuring {measure} would settle it, as would {run_them}."
