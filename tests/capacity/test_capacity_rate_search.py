"""The rate search on made-up monotone predicates: hand-worked probe sequences, and every capacity,
guess, step and threshold of a small range against the answer by inspection."""

from __future__ import annotations

import itertools

import pytest

from sim.capacity.grid import RateGrid
from sim.capacity.rate_search import BELOW_FLOOR, BELOW_THRESHOLD, RESOLVED, RateSearch, search_rate


def _meets_up_to(capacity: int):  # type: ignore[no-untyped-def]
    return lambda index: index <= capacity


def test_a_good_guess_gallops_up_then_bisects() -> None:
    # capacity 70, bound 100, guess 66, first step 2: 66 pass, 68 pass, 72 fail; bisect 70 pass, 71 fail
    outcome = search_rate(_meets_up_to(70), RateSearch(top=100, floor=0, guess=66, first_step=2))
    assert (outcome.status, outcome.capacity, outcome.probed) == (RESOLVED, 70, (66, 68, 72, 70, 71))


def test_a_high_guess_gallops_down_then_bisects() -> None:
    # capacity 40, guess 60, step 1: 60 fail, 59 fail, 57 fail, 53 fail, 45 fail, 29 pass; bisect 37, 41, 39, 40
    outcome = search_rate(_meets_up_to(40), RateSearch(top=100, floor=0, guess=60))
    assert (outcome.status, outcome.capacity) == (RESOLVED, 40)
    assert outcome.probed == (60, 59, 57, 53, 45, 29, 37, 41, 39, 40)


def test_the_bound_caps_the_search_and_is_never_probed_above() -> None:
    outcome = search_rate(_meets_up_to(1000), RateSearch(top=50, floor=0, guess=48, first_step=1))
    assert (outcome.status, outcome.capacity) == (RESOLVED, 50)
    assert max(outcome.probed) == 50


def test_a_fail_at_the_threshold_ends_the_search_after_one_probe() -> None:
    outcome = search_rate(_meets_up_to(30), RateSearch(top=100, floor=0, guess=20, threshold=45))
    assert (outcome.status, outcome.capacity, outcome.probed) == (BELOW_THRESHOLD, None, (45,))


def test_a_threshold_above_the_bound_probes_nothing() -> None:
    outcome = search_rate(_meets_up_to(30), RateSearch(top=40, floor=0, guess=20, threshold=41))
    assert (outcome.status, outcome.probed) == (BELOW_THRESHOLD, ())


def test_nothing_met_down_to_the_floor() -> None:
    outcome = search_rate(_meets_up_to(-5), RateSearch(top=20, floor=0, guess=10))
    assert outcome.status == BELOW_FLOOR and outcome.capacity is None and outcome.probed[-1] == 0


@pytest.mark.parametrize("top", [0, 1, 7, 16])
def test_every_capacity_guess_step_and_threshold_of_a_small_range(top: int) -> None:
    floor = -3
    for capacity, guess, step, threshold in itertools.product(range(floor - 2, top + 2), range(floor - 1, top + 2),
                                                              (1, 2, 5), (None, floor, 2, top)):
        calls: list[int] = []

        def meets(index: int, capacity: int = capacity, calls: list[int] = calls) -> bool:
            calls.append(index)
            return index <= capacity

        outcome = search_rate(meets, RateSearch(top=top, floor=floor, guess=guess, threshold=threshold,
                                                first_step=step))
        truth = min(capacity, top)
        lowest = floor if threshold is None else max(floor, threshold)
        assert len(calls) == len(set(calls)), (capacity, guess, step, threshold, calls)
        assert all(lowest <= index <= top for index in calls)
        if truth >= lowest:
            assert (outcome.status, outcome.capacity) == (RESOLVED, truth), (capacity, guess, step, threshold)
        else:
            assert outcome.capacity is None
            assert outcome.status == (BELOW_FLOOR if threshold is None or threshold <= floor else BELOW_THRESHOLD)


def test_the_grid_is_geometric_and_its_indices_are_exact() -> None:
    grid = RateGrid(base_per_s=2.0, resolution=0.25)
    assert grid.rate_per_s(0) == 2.0 and grid.rate_per_s(2) == pytest.approx(3.125)
    assert grid.index_at_or_below(3.125) == 2  # exactly on a grid point
    assert grid.index_at_or_below(3.12) == 1
    assert grid.index_at_or_below(1.0) == -4  # 2 / 1.25**3 = 1.024 > 1 >= 2 / 1.25**4
    assert grid.steps_for_factor(1.25) == 1 and grid.steps_for_factor(2.0) == 4  # 1.25**3 < 2 <= 1.25**4
