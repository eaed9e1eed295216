"""Rank agreement: within each group of experiments that differ only in plan, does the
simulator pick the plan the hardware found fastest?"""

from __future__ import annotations

from dataclasses import dataclass

from validate.crossval import Outcome


@dataclass(frozen=True)
class GroupRanking:
    group: str
    plans: tuple[str, ...]  # measurement keys, fastest measured first
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
    """One ranking per group of two or more plans, comparing measured with ``variant``'s predictions."""
    groups: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        groups.setdefault(outcome.measurement.group_key, []).append(outcome)
    rankings = []
    for group, members in sorted(groups.items()):
        if len(members) < 2:
            continue
        members = sorted(members, key=lambda o: o.measured_step_time_s)
        predicted = tuple(getattr(o, variant).step_time_s for o in members)
        best_predicted = min(range(len(members)), key=lambda i: predicted[i])
        measured = tuple(o.measured_step_time_s for o in members)
        rankings.append(
            GroupRanking(
                group=group,
                plans=tuple(o.measurement.key for o in members),
                measured_step_times_s=measured,
                predicted_step_times_s=predicted,
                measured_best=members[0].measurement.key,
                predicted_best=members[best_predicted].measurement.key,
                measured_margin=measured[1] / measured[0] - 1.0,
            )
        )
    return tuple(rankings)
