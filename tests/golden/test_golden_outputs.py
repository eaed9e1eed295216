"""The main job, the seed's search and every shipped experiment's ``simulate --json`` equal the
committed outputs (numbers to 1e-12, everything else exactly; run-to-run metadata aside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from golden_cases import command_outputs, differences, run_command

OUTPUTS = Path(__file__).with_name("outputs")


@pytest.mark.parametrize("name", sorted(command_outputs()))
def test_output_equals_the_golden_file(name: str, tmp_path: Path) -> None:
    expected = json.loads((OUTPUTS / f"{name}.json").read_text(encoding="utf-8"))
    got = run_command(command_outputs()[name], str(tmp_path / "out.json"))
    found = differences(expected, got, name)
    assert not found, "\n".join(found[:20])
