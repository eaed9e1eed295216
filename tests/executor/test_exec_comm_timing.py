"""The communication timing mechanism: one iteration's TP all-reduces as one burst, timed like the
step (gloo, one process; the CUDA-graph path is the same burst captured with capture_graphs)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.distributed as dist

from executor import pipeline


@pytest.fixture
def gloo_group(tmp_path: Path) -> Any:
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield dist.new_group([0])
    finally:
        dist.destroy_process_group()


def test_a_burst_of_one_iterations_allreduces_is_timed_per_call(gloo_group: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    issued: list[tuple[tuple[int, ...], Any]] = []
    real_all_reduce = dist.all_reduce

    def counting(tensor: torch.Tensor, *args: Any, group: Any = None, **kwargs: Any) -> Any:
        issued.append((tuple(tensor.shape), group))
        return real_all_reduce(tensor, *args, group=group, **kwargs)

    monkeypatch.setattr(pipeline.dist, "all_reduce", counting)
    run = SimpleNamespace(groups=SimpleNamespace(tp=gloo_group), device=torch.device("cpu"), dtype=torch.float32,
                          use_graphs=False, activity=None)
    per_call_s = pipeline.time_stage_collectives_s(run, (4, 64), calls=8, repeats=5)  # type: ignore[arg-type]
    assert per_call_s > 0.0
    assert len(issued) == 8 * (1 + 5)  # one warm-up burst, then 5 timed bursts of the 8 calls
    assert all(shape == (4, 64) and group is gloo_group for shape, group in issued)


def test_no_tp_group_no_calls_no_time(gloo_group: Any) -> None:
    cpu = torch.device("cpu")
    no_tp = SimpleNamespace(groups=SimpleNamespace(tp=None), device=cpu, dtype=torch.float32, use_graphs=False,
                            activity=None)
    assert pipeline.time_stage_collectives_s(no_tp, (4, 64), calls=8) == 0.0  # type: ignore[arg-type]
    with_tp = SimpleNamespace(groups=SimpleNamespace(tp=gloo_group), device=cpu, dtype=torch.float32,
                              use_graphs=False, activity=None)
    assert pipeline.time_stage_collectives_s(with_tp, (4, 64), calls=0) == 0.0  # type: ignore[arg-type]
