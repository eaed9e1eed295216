"""The simulator's numbers for every shipped experiment equal the committed snapshot to 1e-12.

A change of any cost formula, default or engine rule moves some of these numbers; if the move
is deliberate, regenerate (``python tests/golden/regenerate.py``) and say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from golden_cases import cases, differences, numbers

SNAPSHOT = json.loads(Path(__file__).with_name("simulated.json").read_text(encoding="utf-8"))
CASES = list(cases())


def test_the_snapshot_covers_exactly_the_cases() -> None:
    assert sorted(SNAPSHOT) == sorted(case.key for case in CASES)


@pytest.mark.parametrize("experiment", sorted({case.experiment for case in CASES}))
def test_numbers_equal_the_snapshot(experiment: str) -> None:
    found = []
    for case in CASES:
        if case.experiment == experiment:
            found += differences(SNAPSHOT[case.key], numbers(case), case.key)
    assert not found, "\n".join(found[:20])
