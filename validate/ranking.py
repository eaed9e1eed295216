"""Rank agreement: within each group of experiments that differ only in plan, does the
simulator pick the plan the hardware found fastest?"""

from __future__ import annotations

from dataclasses import dataclass

from validate.crossval import Outcome


@dataclass(frozen=True)
class GroupRanking:
    group: str
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
                plans=tuple(e[0] for e in entries),
                measured_step_times_s=measured,
                predicted_step_times_s=predicted,
                measured_best=entries[0][0],
                predicted_best=entries[best_predicted][0],
                measured_margin=measured[1] / measured[0] - 1.0,
            )
        )
    return tuple(rankings)
