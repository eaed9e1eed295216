"""Properties of the scheduler and the driver over random workloads and settings: the token
budget, max_num_seqs and the KV pool are never exceeded; every admitted request finishes exactly
once with exactly its output tokens; time never goes backwards; a request in an outstanding
iteration is never scheduled again."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st
from serving_cases import linear_time_s

from serving.driver import ServingRun, run_serving
from serving.requests import RequestSpec, RequestStatus
from serving.scheduler import Scheduler
from serving.scheduler_config import POLICIES, SchedulerConfig
from serving.sources import OpenLoopSource


@st.composite
def scheduler_configs(draw: Any) -> SchedulerConfig:
    policy = draw(st.sampled_from(POLICIES))
    max_model_len = draw(st.integers(8, 120))
    block = draw(st.sampled_from([1, 4, 16]))
    low = max(block, max_model_len) if policy != "vllm" else block  # a budget holds at least one block
    budget = draw(st.integers(low, max(low, 160 if policy == "vllm" else 200)))
    sizes = draw(st.sampled_from([(), (1, 2, 4), (2, 8)]))
    return SchedulerConfig(policy=policy, max_num_batched_tokens=budget, max_num_seqs=draw(st.integers(1, 6)),
                           block_size_tokens=block, num_blocks=draw(st.integers(1, 40)),
                           max_model_len_tokens=max_model_len, cuda_graph_sizes=sizes,
                           reserve_full_prompt=draw(st.booleans()))


@st.composite
def request_lists(draw: Any) -> tuple[RequestSpec, ...]:
    row = st.tuples(st.integers(0, 40), st.integers(1, 80), st.integers(1, 16))  # arrival ms, prompt, output
    rows = draw(st.lists(row, min_size=1, max_size=24))
    arrivals_ms = sorted(row[0] for row in rows)
    return tuple(RequestSpec(index, arrival * 1e-3, prompt, output)
                 for index, (arrival, (_, prompt, output)) in enumerate(zip(arrivals_ms, rows, strict=True)))


def _check_iterations(run: ServingRun, config: SchedulerConfig, specs: dict[int, RequestSpec]) -> None:
    last_start: dict[int, float] = {}
    for it in run.iterations:
        plan = it.plan
        assert 0 < plan.num_tokens <= config.max_num_batched_tokens
        assert it.num_running <= config.max_num_seqs and it.kv_blocks_used <= config.num_blocks
        assert plan.padded_tokens >= plan.num_tokens and it.end_s > it.start_s == plan.scheduled_s
        assert it.start_s >= last_start.get(it.replica, 0.0)
        last_start[it.replica] = it.start_s
        assert len(set(plan.request_ids)) == plan.num_seqs
        for item in plan.items:
            assert item.new_tokens >= 1
            assert item.context_tokens <= specs[item.request_id].max_kv_tokens <= config.max_model_len_tokens
    for first in run.iterations:  # an iteration scheduled while another is outstanding shares no request with it
        for later in run.iterations:
            if later is not first and later.replica == first.replica and first.start_s <= later.start_s < first.end_s:
                assert not set(first.plan.request_ids) & set(later.plan.request_ids)


def _check_records(run: ServingRun, config: SchedulerConfig, specs: dict[int, RequestSpec]) -> None:
    assert [record.request_id for record in run.records] == sorted(specs)
    emitted = Counter(item.request_id for it in run.iterations for item in it.plan.items if item.emits_token)
    processed = Counter()
    for it in run.iterations:
        for item in it.plan.items:
            processed[item.request_id] += item.new_tokens
    probe = Scheduler(config)
    for record in run.records:
        spec = specs[record.request_id]
        if probe.rejection_reason(spec):
            assert record.status is RequestStatus.REJECTED and not record.token_times_s
            continue
        assert record.status is RequestStatus.FINISHED
        assert len(record.token_times_s) == spec.output_tokens == emitted[spec.request_id]
        times = record.token_times_s
        assert record.arrival_s <= record.first_scheduled_s < times[0]  # type: ignore[operator]
        assert all(later > earlier for earlier, later in pairwise(times))
        assert record.finish_s == times[-1]
        if record.preemptions == 0:  # every known token but the last is fed through the model once
            assert processed[spec.request_id] == spec.max_kv_tokens
        else:
            assert processed[spec.request_id] > spec.max_kv_tokens
    assert all(later.time_s >= earlier.time_s for earlier, later in pairwise(run.samples))


@settings(max_examples=150, deadline=None)
@given(config=scheduler_configs(), specs=request_lists(), depth=st.integers(1, 3), replicas=st.integers(1, 2),
       router=st.sampled_from(["round_robin", "least_outstanding", "least_kv"]))
def test_driver_runs_keep_every_limit_and_finish_every_request(
    config: SchedulerConfig, specs: tuple[RequestSpec, ...], depth: int, replicas: int, router: str,
) -> None:
    run = run_serving(OpenLoopSource(specs), config, linear_time_s, pipeline_depth=depth, replicas=replicas,
                      router=router)
    by_id = {spec.request_id: spec for spec in specs}
    event(f"preempted: {any(record.preemptions for record in run.records)}")
    event(f"rejected: {bool(run.rejected)}")
    _check_iterations(run, config, by_id)
    _check_records(run, config, by_id)


@settings(max_examples=150, deadline=None)
@given(config=scheduler_configs(), specs=request_lists(),
       moves=st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=1, max_size=200))
def test_scheduler_called_with_plans_outstanding_in_any_order(
    config: SchedulerConfig, specs: tuple[RequestSpec, ...], moves: list[tuple[bool, int]],
) -> None:
    """Drive the scheduler directly: at each step either schedule another plan (several may be
    outstanding) or complete any outstanding one; then drain. No request is in two outstanding
    plans, the limits hold after every call, and every admitted request finishes once."""
    scheduler = Scheduler(config)
    rejected = {spec.request_id for spec in specs if scheduler.add_request(spec) is not None}
    outstanding: list[Any] = []
    finished: list[int] = []
    now_s = 0.0

    def step(schedule: bool, pick: int) -> None:
        nonlocal now_s
        now_s += 1e-3
        plan = scheduler.schedule(now_s) if schedule or not outstanding else None
        if plan is not None:
            busy = {rid for other in outstanding for rid in other.request_ids}
            assert not busy & set(plan.request_ids)
            assert plan.num_tokens <= config.max_num_batched_tokens
            outstanding.append(plan)
        elif outstanding:
            done = outstanding.pop(pick % len(outstanding))
            finished.extend(record.request_id for record in scheduler.complete(done, now_s))
        assert scheduler.num_running <= config.max_num_seqs
        assert scheduler.kv_blocks_used <= config.num_blocks

    for schedule, pick in moves:
        step(schedule, pick)
    for _ in range(10_000):
        if not outstanding and scheduler.num_in_system == 0:
            break
        step(not outstanding, 0)
    assert scheduler.num_in_system == 0 and not outstanding
    assert sorted(finished) == sorted(set(finished)) == sorted({spec.request_id for spec in specs} - rejected)
