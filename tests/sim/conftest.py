"""Fixtures for the simulator tests (the toy experiment lives in sim_toy.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sim_toy import toy_experiment

from topology.experiment import Experiment


@pytest.fixture
def make_experiment() -> Callable[..., Experiment]:
    return toy_experiment
