"""Measured plans of one group side by side, and which simulated cause explains their gap."""

from __future__ import annotations

from dataclasses import dataclass

from validate.crossval import Outcome


@dataclass(frozen=True)
class PlanComparison:
    """Two or more measured plans of one group, with their breakdowns."""

    group: str
    outcomes: tuple[Outcome, ...]  # fastest measured first


def measured_comparisons(outcomes: tuple[Outcome, ...]) -> tuple[PlanComparison, ...]:
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(o.measurement.group_key, []).append(o)
    return tuple(
        PlanComparison(group=g, outcomes=tuple(sorted(members, key=lambda o: o.measured_step_time_s)))
        for g, members in sorted(groups.items())
        if len(members) >= 2
    )


SAME_STEP = 1e-6  # relative: simulated steps this close are the same prediction


def explain_difference(winner: Outcome, loser: Outcome) -> str:
    """Which simulated cause accounts for most of the step-time gap between two plans (or that the
    simulator predicts the same step for both: the measured gap is then not the plan's)."""
    longer = loser.measured_step_time_s / winner.measured_step_time_s - 1.0
    text = (f"On hardware `{winner.measurement.key}` ({winner.measurement.plan.describe()}) has the shortest step; "
            f"`{loser.measurement.key}` ({loser.measurement.plan.describe()}) takes {100 * longer:.1f}% longer")
    if abs(loser.final.step_time_s - winner.final.step_time_s) <= SAME_STEP * winner.final.step_time_s:
        return text + ("; the fitted simulator predicts the same step for both, so the gap is run-to-run "
                       "variation (or something the plan does not describe), not a cause it models.")
    a, b = winner.final.breakdown_s, loser.final.breakdown_s
    causes = sorted(set(a) | set(b), key=lambda k: abs(b.get(k, 0.0) - a.get(k, 0.0)), reverse=True)
    if not causes:
        return text + "; the simulator gave no breakdown."
    top = causes[0]
    delta_s = b.get(top, 0.0) - a.get(top, 0.0)
    return (text + f"; in the fitted simulator the largest difference is **{top}**: "
            f"{1e6 * b.get(top, 0.0):.1f} us vs {1e6 * a.get(top, 0.0):.1f} us per step "
            f"({'+' if delta_s >= 0 else ''}{1e6 * delta_s:.1f} us).")
