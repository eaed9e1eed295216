"""Shared pieces of the serving tests: the iteration-time function of the hand-worked cases and
a scheduler config with small defaults."""

from __future__ import annotations

from typing import Any

from serving.batch import IterationPlan
from serving.driver import ServingRun, run_serving
from serving.requests import RequestSpec
from serving.scheduler_config import SchedulerConfig
from serving.sources import OpenLoopSource

MS = 1e-3


def linear_time_s(plan: IterationPlan) -> float:
    """1 ms per iteration plus 0.01 ms per scheduled (padded) token."""
    return 1e-3 + 1e-5 * plan.padded_tokens


def config(**overrides: Any) -> SchedulerConfig:
    values: dict[str, Any] = {"policy": "vllm", "max_num_batched_tokens": 128, "max_num_seqs": 4,
                              "block_size_tokens": 16, "num_blocks": 64, "max_model_len_tokens": 128}
    values.update(overrides)
    return SchedulerConfig(**values)


def requests(*rows: tuple[float, int, int]) -> tuple[RequestSpec, ...]:
    """Requests 0, 1, ... from (arrival in ms, prompt tokens, output tokens)."""
    return tuple(RequestSpec(index, arrival_ms * MS, prompt, output)
                 for index, (arrival_ms, prompt, output) in enumerate(rows))


def serve(specs: tuple[RequestSpec, ...], scheduler: SchedulerConfig, **options: Any) -> ServingRun:
    return run_serving(OpenLoopSource(specs), scheduler, linear_time_s, **options)


def token_times_ms(run: ServingRun) -> dict[int, list[float]]:
    return {record.request_id: [round(t / MS, 9) for t in record.token_times_s] for record in run.records}
