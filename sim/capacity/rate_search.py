"""The highest grid rate at which one deployment meets its SLOs: exponential probing, then bisection.

Pure: it is given ``meets(k)`` (does the deployment meet the SLOs at rate index k?) and assumes what
bisection always assumes, that meeting is monotone in the rate (met at k implies met below k; the brute
force test checks it on its space). Known before any probe:

* ``top``: the capacity bound's index (:mod:`sim.capacity.bound`): rate(top + 1) cannot be met;
* ``floor``: the lowest index worth testing (a deployment that fails there has no useful capacity);
* ``threshold``: when only a capacity of at least rate(threshold) can matter (it would not enter the
  ranking otherwise), a failure there ends the search: "below threshold";
* ``guess``: where to start.

From the guess it probes outward with steps s, 2s, 4s, ... (s = ``first_step``; upward after a
pass, downward after a fail) until it holds a pass and a fail, then bisects between them. The
answer is index k with meets(k) and not meets(k + 1): the capacity lies in [rate(k), rate(k + 1)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

RESOLVED = "resolved"
BELOW_THRESHOLD = "below threshold"
BELOW_FLOOR = "below floor"


@dataclass(frozen=True)
class RateSearch:
    top: int
    floor: int
    guess: int
    threshold: int | None = None
    first_step: int = 1  # the first probing step in indices (a guess known to be rough: larger)


@dataclass(frozen=True)
class RateOutcome:
    """``capacity`` is the index found (``status`` resolved), else None; ``probed``: indices in order."""

    status: str
    capacity: int | None
    probed: tuple[int, ...]


class _Bracket:
    def __init__(self, meets: Callable[[int], bool], top: int) -> None:
        self.meets = meets
        self.passed: int | None = None  # the highest index known to pass
        self.failed = top + 1  # the lowest index known to fail
        self.probed: list[int] = []

    def test(self, index: int) -> bool:
        self.probed.append(index)
        met = self.meets(index)
        if met:
            self.passed = index if self.passed is None else max(self.passed, index)
        else:
            self.failed = min(self.failed, index)
        return met


def search_rate(meets: Callable[[int], bool], search: RateSearch) -> RateOutcome:
    """Probe ``meets`` as the module docstring says; every index is probed at most once."""
    lowest = search.floor if search.threshold is None else max(search.floor, search.threshold)
    below = BELOW_FLOOR if search.threshold is None or search.threshold <= search.floor else BELOW_THRESHOLD
    if lowest > search.top:
        return RateOutcome(below, None, ())
    bracket = _Bracket(meets, search.top)
    start = min(max(search.guess, lowest), search.top)
    if bracket.test(start):
        _gallop_up(bracket, search.first_step)
    else:
        _gallop_down(bracket, lowest, search.first_step)
    if bracket.passed is None:
        return RateOutcome(below, None, tuple(bracket.probed))
    while bracket.failed - bracket.passed > 1:
        bracket.test((bracket.passed + bracket.failed) // 2)
    return RateOutcome(RESOLVED, bracket.passed, tuple(bracket.probed))


def _gallop_up(bracket: _Bracket, step: int) -> None:
    while bracket.passed is not None and bracket.passed + step < bracket.failed:
        if not bracket.test(bracket.passed + step):
            return
        step *= 2


def _gallop_down(bracket: _Bracket, lowest: int, step: int) -> None:
    while bracket.passed is None:
        index = bracket.failed - step
        if index <= lowest:
            if lowest < bracket.failed:
                bracket.test(lowest)
            return
        bracket.test(index)
        step *= 2
