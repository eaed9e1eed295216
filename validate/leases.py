"""Runs from other machine leases, set beside the fitted runs of the same entry and never fitted.

``layerwise validate RESULTS --compare-leases OLDER...`` loads older runs (another lease, maybe
another executor version) only to show how much one entry's step time moves between leases:
host-bound eager runs move, device-bound graph runs should not. They are matched to the
fitted runs by :func:`entry_key`, not by :attr:`Measurement.config_key`: a run of the same
entry recorded from another cluster file (an experiment naming ``h100x1`` run on an H200)
carries other device figures in its plan but ran the same thing.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

from validate.crossval import Outcome
from validate.measured import Measurement
from validate.ranking import plan_layout


@dataclass(frozen=True)
class LeaseComparison:
    """One run of another lease beside the fitted run of the same entry."""

    fitted: Outcome  # the fitted lease's run (and its held-out prediction)
    other: Measurement  # the same entry, measured on another lease

    @property
    def difference(self) -> float:
        """Other lease's step time against the fitted lease's (0.05: 5% slower)."""
        return self.other.measured_step_time_s / self.fitted.measured_step_time_s - 1.0

    @property
    def held_out_error(self) -> float:
        """The fitted lease's held-out prediction against the other lease's measurement."""
        return self.fitted.held_out.step_time_s / self.other.measured_step_time_s - 1.0


@dataclass(frozen=True)
class LeaseSpread:
    regime: str
    lease: str
    commits: tuple[str, ...]  # the executor commits (short) the lease's runs record
    runs: int
    median_difference: float  # median |difference| to the fitted lease
    max_difference: float
    worst_key: str
    held_out_mape: float  # the fitted lease's held-out predictions scored on this lease's runs


def entry_key(m: Measurement) -> str:
    """Equal for runs of one entry on one GPU model: the GPU that ran, the model, the steady
    workload (:meth:`Measurement.steady_workload`) and the plan's layout and microbatch count."""
    layout = plan_layout(m.plan)
    return json.dumps({"gpu": m.gpu_name, "model": m.experiment.model.to_dict(), "workload": m.steady_workload(),
                       "plan": repr((layout, m.plan.microbatches))}, sort_keys=True)


def compare_leases(outcomes: tuple[Outcome, ...],
                   others: list[Measurement]) -> tuple[tuple[LeaseComparison, ...], tuple[str, ...]]:
    """Each other run beside the fitted run of its entry (the first by key when repeated), and
    the keys of other runs no fitted run matches."""
    fitted: dict[str, Outcome] = {}
    for o in sorted(outcomes, key=lambda o: o.measurement.key):
        fitted.setdefault(entry_key(o.measurement), o)
    matched, unmatched = [], []
    for m in others:
        outcome = fitted.get(entry_key(m))
        if outcome is None:
            unmatched.append(m.key)
        else:
            matched.append(LeaseComparison(outcome, m))
    return tuple(sorted(matched, key=lambda c: (c.other.regime, c.other.key))), tuple(unmatched)


def lease_spreads(comparisons: tuple[LeaseComparison, ...]) -> tuple[LeaseSpread, ...]:
    """Per regime and other lease: how far its runs are from the fitted lease's."""
    spreads = []
    for regime, lease in sorted({(c.other.regime, c.other.lease) for c in comparisons}):
        mine = [c for c in comparisons if (c.other.regime, c.other.lease) == (regime, lease)]
        worst = max(mine, key=lambda c: abs(c.difference))
        commits = sorted({str(c.other.result.environment.get("git_commit") or "unrecorded")[:7] for c in mine})
        spreads.append(LeaseSpread(
            regime=regime, lease=lease, commits=tuple(commits), runs=len(mine),
            median_difference=statistics.median(abs(c.difference) for c in mine),
            max_difference=abs(worst.difference), worst_key=worst.other.key,
            held_out_mape=statistics.fmean(abs(c.held_out_error) for c in mine)))
    return tuple(spreads)
