"""Rank agreement: within each group of experiments that differ only in plan, does the
simulator pick the plan the hardware found fastest?

Each group is one kind of comparison (:func:`comparison_kind`), counted apart: plans that
differ only in their microbatch count (the same stages, TP degrees and devices), or plans that
differ in layout (tensor against pipeline parallelism, stage boundaries, devices). A count of
agreeing groups says nothing about a kind no group measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from topology.plan import Plan
from validate.crossval import Outcome

MICROBATCHES = "microbatch count"
LAYOUT = "layout (TP against pipeline)"
KINDS = (LAYOUT, MICROBATCHES)


def plan_layout(plan: Plan) -> tuple[object, ...]:
    """Everything about a plan but its microbatch count: schedule, stage boundaries, TP, devices."""
    return (plan.schedule, tuple((s.layer_start, s.layer_stop, s.tp_degree, s.devices) for s in plan.stages))


def comparison_kind(plans: list[Plan]) -> str:
    return MICROBATCHES if len({plan_layout(p) for p in plans}) == 1 else LAYOUT


@dataclass(frozen=True)
class GroupRanking:
    group: str
    kind: str  # one of KINDS
    plans: tuple[str, ...]  # plan descriptions (with the runs averaged), fastest measured first
    measured_step_times_s: tuple[float, ...]
    predicted_step_times_s: tuple[float, ...]  # in the same order as ``plans``
    measured_best: str
    predicted_best: str
    measured_margin: float  # how much slower the measured runner-up is than the best (0.05 = 5%)

    @property
    def agrees(self) -> bool:
        return self.measured_best == self.predicted_best

    @property
    def regret(self) -> float:
        """How much slower the plan the simulator picks ran than the measured best (0 when it is the best)."""
        chosen = self.plans.index(self.predicted_best)
        return self.measured_step_times_s[chosen] / self.measured_step_times_s[0] - 1.0

    @property
    def order_agrees(self) -> bool:
        """The whole order, not only the winner."""
        predicted_order = sorted(range(len(self.plans)), key=lambda i: self.predicted_step_times_s[i])
        return predicted_order == list(range(len(self.plans)))


def rank_groups(outcomes: tuple[Outcome, ...], variant: str) -> tuple[GroupRanking, ...]:
    """One ranking per group with two or more distinct plans, comparing measured with
    ``variant``'s predictions. Repeated runs of one plan are averaged into one entry (their
    spread is measurement noise, not a choice between plans); a group whose runs all share one
    plan is not a ranking."""
    groups: dict[str, dict[str, list[Outcome]]] = {}
    for outcome in outcomes:
        plan_label = outcome.measurement.plan.describe()
        groups.setdefault(outcome.measurement.group_key, {}).setdefault(plan_label, []).append(outcome)
    rankings = []
    for group, by_plan in sorted(groups.items()):
        if len(by_plan) < 2:
            continue
        entries = sorted(
            (
                (f"{plan} ({len(runs)} runs)" if len(runs) > 1 else plan,
                 sum(o.measured_step_time_s for o in runs) / len(runs),
                 sum(getattr(o, variant).step_time_s for o in runs) / len(runs))
                for plan, runs in by_plan.items()
            ),
            key=lambda entry: entry[1],
        )
        measured = tuple(e[1] for e in entries)
        predicted = tuple(e[2] for e in entries)
        best_predicted = min(range(len(entries)), key=lambda i: predicted[i])
        rankings.append(
            GroupRanking(
                group=group,
                kind=comparison_kind([runs[0].measurement.plan for runs in by_plan.values()]),
                plans=tuple(e[0] for e in entries),
                measured_step_times_s=measured,
                predicted_step_times_s=predicted,
                measured_best=entries[0][0],
                predicted_best=entries[best_predicted][0],
                measured_margin=measured[1] / measured[0] - 1.0,
            )
        )
    return tuple(rankings)


def agreement_by_kind(rankings: tuple[GroupRanking, ...]) -> dict[str, tuple[int, int, int]]:
    """Per kind: (groups, agreeing on the best plan, agreeing on the whole order)."""
    return {kind: (len(mine), sum(r.agrees for r in mine), sum(r.order_agrees for r in mine))
            for kind in KINDS
            for mine in [[r for r in rankings if r.kind == kind]]}


def worst_regret(rankings: tuple[GroupRanking, ...]) -> float:
    """The largest regret over the groups (0 with none)."""
    return max((r.regret for r in rankings), default=0.0)


def describe_agreement(rankings: tuple[GroupRanking, ...]) -> list[str]:
    """One sentence per kind: what was compared and how many agree, or that none was measured."""
    lines = []
    for kind, (groups, best, order) in agreement_by_kind(rankings).items():
        if groups == 0:
            lines.append(f"{kind}: **none measured**; no run compares plans of this kind, so nothing is known "
                         "about how well the simulator ranks them")
        else:
            lines.append(f"{kind}: {best} of {groups} groups agree on the best plan, {order} of {groups} on the "
                         "whole order")
    return lines
