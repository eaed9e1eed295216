"""Fixtures of the validate tests (helpers live in val_stand_in.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from val_stand_in import write_measurements

from validate.measured import Measurement


@pytest.fixture
def stand_in_measurements(tmp_path: Path) -> list[Measurement]:
    return write_measurements(tmp_path, {"hbm_efficiency": 0.8, "launch_overhead_graph_s": 3e-6}, 12)
