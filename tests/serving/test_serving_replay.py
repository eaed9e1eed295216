"""``serving.replay``: a run's own times reproduce it exactly; a changed batch, time or request is
found and named; closed loops replay through their workload."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from serving_cases import MS, config, linear_time_s, requests

from serving.driver import run_serving
from serving.replay import main, replay_record
from serving.run_record import ServingRunRecord, serving_record_from_dict
from serving.setup import serving_setup_from_dict
from serving.sources import OpenLoopSource, request_source

SPECS = requests((0.0, 40, 5), (0.3, 70, 3), (0.35, 9, 6), (2.0, 33, 4), (2.0, 12, 2))


def _record(run_kwargs: dict[str, object] | None = None, **scheduler: object) -> ServingRunRecord:
    cfg = config(max_num_batched_tokens=32, num_blocks=7, **scheduler)
    run = run_serving(OpenLoopSource(SPECS), cfg, linear_time_s, **(run_kwargs or {}))  # type: ignore[arg-type]
    return ServingRunRecord(source="measured", experiment={}, plan={}, scheduler=cfg, run=run)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_a_run_replays_itself_exactly(depth: int) -> None:
    record = _record({"pipeline_depth": depth})
    assert any(it.plan.preempted_ids for it in record.run.iterations)  # 7 blocks of 16: preemptions
    comparison = replay_record(serving_record_from_dict(json.loads(json.dumps(record.to_dict()))))
    assert comparison.identical, comparison.mismatch
    assert comparison.iterations == len(record.run.iterations) and comparison.max_time_difference_s == 0.0


def test_a_changed_batch_is_named() -> None:
    record = _record()
    iterations = list(record.run.iterations)
    third = iterations[2]
    first_item = dataclasses.replace(third.plan.items[0], new_tokens=third.plan.items[0].new_tokens + 1)
    iterations[2] = dataclasses.replace(third, plan=dataclasses.replace(third.plan,
                                                                        items=(first_item, *third.plan.items[1:])))
    tampered = dataclasses.replace(record, run=dataclasses.replace(record.run, iterations=tuple(iterations)))
    comparison = replay_record(tampered)
    assert not comparison.identical and comparison.iterations == 2
    assert comparison.mismatch is not None and comparison.mismatch.startswith("iteration 2: the run had [")


def test_a_changed_token_time_is_named() -> None:
    record = _record()
    records = list(record.run.records)
    records[1] = dataclasses.replace(records[1], token_times_s=(records[1].token_times_s[0] + MS,
                                                                *records[1].token_times_s[1:]))
    comparison = replay_record(dataclasses.replace(record, run=dataclasses.replace(record.run,
                                                                                   records=tuple(records))))
    assert comparison.mismatch is not None and comparison.mismatch.startswith("request 1: the run recorded")


def test_a_closed_loop_replays_through_its_workload() -> None:
    raw = {"model": "tiny-test", "cluster": "h100x1",
           "workload": {"phase": "serve", "seed": 3, "num_requests": 9,
                        "arrivals": {"kind": "closed_loop", "users": 3, "think_time_s": 0.001},
                        "prompt_tokens": {"kind": "uniform", "low_tokens": 5, "high_tokens": 40},
                        "output_tokens": {"kind": "uniform", "low_tokens": 1, "high_tokens": 6}},
           "scheduler": {"max_num_batched_tokens": 32, "max_num_seqs": 4, "num_blocks": 16, "max_model_len_tokens": 64},
           "plans": {"tp1": {"partitioner": "tp-pp", "tp": 1, "pp": 1}}}
    setup = serving_setup_from_dict(raw)
    run = run_serving(request_source(setup.workload), setup.scheduler, linear_time_s)
    record = ServingRunRecord(source="measured", experiment=raw, plan={}, scheduler=setup.scheduler, run=run)
    assert replay_record(record).identical


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_record().to_dict()))
    assert main([str(path)]) == 0
    assert capsys.readouterr().out.startswith("replay: all ")
    path.write_text("{}")
    assert main([str(path)]) == 2
    assert capsys.readouterr().err.strip() == f"serving.replay: error: {path}: not a serving run (schema " \
                                              f"'layerwise-serving-run' expected)"
