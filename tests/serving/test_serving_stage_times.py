"""The driver with each stage's time given apart (what a measured pipeline records): hand-worked
times, the shared arithmetic, bad answers, and the record keeping the times."""

from __future__ import annotations

import pytest
from serving_cases import MS, config, requests, token_times_ms

from serving.batch import IterationPlan
from serving.driver import advance_stages, run_serving
from serving.run_record import ServingRunRecord, serving_record_from_dict
from serving.sources import OpenLoopSource
from topology.errors import LayerwiseError


def quarter_then_three_quarters(plan: IterationPlan) -> tuple[float, float]:
    return (0.25 * MS, 0.75 * MS)


def test_pipeline_with_uneven_stage_times() -> None:
    # Depth 2, every iteration 0.25 ms in stage 0 and 0.75 ms in stage 1. A and B: prompt 10,
    # output 2, at t=0, budget 10.
    # t=0     A's prompt: stage 0 [0, 0.25], stage 1 [0.25, 1.0].
    # t=0.25  stage 0 free, one in flight: B's prompt: stage 0 [0.25, 0.5], stage 1 [1.0, 1.75].
    # t=0.5   stage 0 free but two in flight: nothing.
    # t=1.0   A tok 1; A decodes: stage 0 [1.0, 1.25], stage 1 (busy to 1.75) [1.75, 2.5].
    # t=1.75  B tok 1; B decodes: stage 0 [1.75, 2.0], stage 1 [2.5, 3.25].
    run = run_serving(OpenLoopSource(requests((0.0, 10, 2), (0.0, 10, 2))),
                      config(max_num_batched_tokens=10, max_model_len_tokens=64,
                             block_size_tokens=8), quarter_then_three_quarters,
                      pipeline_depth=2)
    assert token_times_ms(run) == {0: [1.0, 2.5], 1: [1.75, 3.25]}
    assert [round(it.start_s / MS, 9) for it in run.iterations] == [0.0, 0.25, 1.0, 1.75]
    assert [round(it.end_s / MS, 9) for it in run.iterations] == [1.0, 1.75, 2.5, 3.25]
    assert all(it.stage_times_s == (0.25 * MS, 0.75 * MS) and it.duration_s == MS for it in run.iterations)


def test_equal_shares_keep_the_uniform_arithmetic() -> None:
    # A duration and its d equal shares given apart run the same pipeline to the last bit.
    specs = requests((0.0, 10, 3), (0.1, 7, 4), (0.2, 30, 2))
    uniform = run_serving(OpenLoopSource(specs), config(max_num_batched_tokens=16), lambda plan: 1.3 * MS,
                          pipeline_depth=2)
    shares = run_serving(OpenLoopSource(specs), config(max_num_batched_tokens=16),
                         lambda plan: (1.3 * MS / 2, 1.3 * MS / 2), pipeline_depth=2)
    assert [it.end_s for it in uniform.iterations] == [it.end_s for it in shares.iterations]
    assert uniform.iterations[0].stage_times_s == ()


def test_advance_stages_is_max_plus() -> None:
    free = [1.0, 5.0, 2.0]
    assert advance_stages(free, 0.5, (1.0, 1.0, 1.0)) == 7.0  # 0.5 -> max(0.5, 1) + 1 = 2 -> 6 -> 7
    assert free == [2.0, 6.0, 7.0]
    assert advance_stages(free, 6.5, (0.5, 0.25), first_stage=1) == 7.25  # stages 1 and 2 only
    assert free == [2.0, 7.0, 7.25]


@pytest.mark.parametrize("answer", [(1e-3,), (1e-3, -1e-4), (0.0, 0.0), (1e-3, float("inf")), (1e-3, True)])
def test_bad_stage_times_are_one_error(answer: tuple[float, ...]) -> None:
    with pytest.raises(LayerwiseError, match=r"^iteration_time_s: returned .* per-stage times must be 2 finite"):
        run_serving(OpenLoopSource(requests((0.0, 4, 2))), config(), lambda plan: answer, pipeline_depth=2)


def test_the_record_keeps_stage_times() -> None:
    run = run_serving(OpenLoopSource(requests((0.0, 10, 2), (0.0, 10, 2))),
                      config(max_num_batched_tokens=10, max_model_len_tokens=64,
                             block_size_tokens=8), quarter_then_three_quarters,
                      pipeline_depth=2)
    record = ServingRunRecord(source="measured", experiment={}, plan={}, scheduler=config(), run=run)
    raw = record.to_dict()
    assert raw["iterations"][0]["stage_times_s"] == [0.25 * MS, 0.75 * MS]
    assert serving_record_from_dict(raw).run.iterations == run.iterations
    uniform = run_serving(OpenLoopSource(requests((0.0, 4, 2))), config(), lambda plan: MS)
    assert "stage_times_s" not in ServingRunRecord(source="simulated", experiment={}, plan={}, scheduler=config(),
                                                   run=uniform).to_dict()["iterations"][0]
