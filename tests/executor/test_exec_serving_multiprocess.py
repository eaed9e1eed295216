"""Replay equality on several gloo processes (issue 23's "Done when"): ``layerwise run`` serves the
tiny experiment under TP2 and PP2 (Poisson arrivals, varied lengths, chunked prefill, preemptions in
a small KV pool), the record's iteration times fed back into the scheduler and driver reproduce every
iteration's batch, and every request's tokens are those of the one-process run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from executor.serving.session import serve_in_process
from layerwise.cli import main as layerwise_main
from serving.batch import PREFILL
from serving.replay import replay_record
from serving.run_record import serving_record_from_dict
from serving.setup import load_serving_setup
from topology.experiment import build_plan

EXPERIMENT = str(Path(__file__).resolve().parents[1] / "data" / "serving" / "tiny-serve.yaml")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def one_process_tokens() -> dict[str, list[int]]:
    setup = load_serving_setup(EXPERIMENT)
    result = serve_in_process(setup, build_plan(setup.experiment, "tp1"), "tp1", torch.device("cpu"))
    return {str(k): v for k, v in result.generated.items()}


@pytest.mark.parametrize("plan", ["tp2", "pp2"])
def test_multi_rank_serving_replays_exactly(plan: str, one_process_tokens: dict[str, list[int]], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out, tokens = tmp_path / "run.json", tmp_path / "tokens.json"
    assert layerwise_main(["run", EXPERIMENT, "--plan", plan, "--json", str(out), "--dump-outputs", str(tokens),
                           "--timeout-s", "60"]) == 0
    printed = capsys.readouterr().out
    assert "executor:   TTFT p50 " in printed and "14 finished, 0 rejected" in printed
    record = serving_record_from_dict(json.loads(out.read_text()))
    comparison = replay_record(record)
    assert comparison.identical, comparison.mismatch
    assert comparison.max_time_difference_s == 0.0
    iterations = record.run.iterations
    # Timing-independent facts only (the batches themselves depend on the measured times):
    # request 0's 44-token prompt is chunked (budget 32) ...
    assert any(i.request_id == 0 and i.kind == PREFILL and i.context_tokens > i.new_tokens
               for it in iterations for i in it.plan.items)
    depth = 2 if plan == "pp2" else 1
    assert record.run.pipeline_depth == depth and record.environment["world_size"] == 2
    assert all(len(it.stage_times_s) == (depth if depth > 1 else 0) for it in iterations)
    if depth > 1:  # ... and request 1, 21 us behind it, starts when stage 0 is free, before request 0 is done
        first, second = iterations[:2]
        assert first.plan.request_ids == (0,) and 1 in second.plan.request_ids and 0 not in second.plan.request_ids
        assert second.start_s == first.start_s + first.stage_times_s[0] < first.end_s
    assert json.loads(tokens.read_text()) == one_process_tokens
