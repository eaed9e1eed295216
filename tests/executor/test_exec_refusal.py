"""A refused run: rank 0 says why; another rank waits for it (torchrun ends every rank once one exits, so a
rank that exited first could end rank 0 before it had said anything: the CI saw that race once)."""

from __future__ import annotations

import pytest

from executor import refusal
from topology.errors import LayerwiseError


def test_rank_0_says_it_and_the_others_wait(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    slept: list[float] = []
    monkeypatch.setattr(refusal.time, "sleep", slept.append)
    error = LayerwiseError("plan.devices", "needs 4 processes")
    assert refusal.refuse(0, error) == 2
    assert capsys.readouterr().err == "executor: error: plan.devices: needs 4 processes\n" and slept == []
    assert refusal.refuse(1, error) == 2
    assert capsys.readouterr().err == "" and slept == [refusal.RANK0_SAYS_IT_S]
