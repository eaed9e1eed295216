"""The scheduler as a class (calls in the order an executor would make them) and the routers."""

from __future__ import annotations

import pytest
from serving_cases import MS, config, linear_time_s, requests, serve

from serving.driver import run_serving
from serving.requests import RequestSpec, RequestStatus
from serving.routing import Router
from serving.scheduler import Scheduler
from serving.sources import OpenLoopSource
from topology.errors import LayerwiseError


def test_schedule_leaves_out_requests_of_outstanding_plans() -> None:
    scheduler = Scheduler(config(max_num_batched_tokens=10, block_size_tokens=8, max_model_len_tokens=64))
    for spec in requests((0.0, 10, 2), (0.0, 10, 2), (0.0, 10, 2)):
        assert scheduler.add_request(spec) is None
    first = scheduler.schedule(0.0)
    second = scheduler.schedule(0.0)  # request 0 is in flight: request 1 is admitted
    third = scheduler.schedule(0.0)
    assert first is not None and second is not None and third is not None
    assert (first.request_ids, second.request_ids, third.request_ids) == ((0,), (1,), (2,))
    assert scheduler.schedule(0.0) is None  # everyone is in flight
    assert scheduler.plans_in_flight == 3
    assert scheduler.complete(first, 1.0) == ()  # request 0's first token, not done
    decode = scheduler.schedule(1.0)
    assert decode is not None and decode.request_ids == (0,) and decode.decode_only
    assert [record.request_id for record in scheduler.complete(decode, 2.0)] == [0]
    assert scheduler.num_running == 2 and scheduler.num_waiting == 0


def test_max_num_seqs_counts_requests_of_every_outstanding_plan() -> None:
    scheduler = Scheduler(config(max_num_seqs=2, max_num_batched_tokens=10, block_size_tokens=8,
                                 max_model_len_tokens=64))
    for spec in requests((0.0, 10, 2), (0.0, 10, 2), (0.0, 10, 2)):
        scheduler.add_request(spec)
    assert scheduler.schedule(0.0) is not None and scheduler.schedule(0.0) is not None
    assert scheduler.schedule(0.0) is None  # two running (both in flight): the third waits
    assert scheduler.num_waiting == 1


def test_misuse_is_refused_with_the_field_named() -> None:
    scheduler = Scheduler(config())
    spec = RequestSpec(0, 0.0, 4, 2)
    scheduler.add_request(spec)
    with pytest.raises(LayerwiseError, match=r"^request_id: 0 was already added"):
        scheduler.add_request(spec)
    plan = scheduler.schedule(1.0)
    assert plan is not None
    with pytest.raises(LayerwiseError, match=r"^now_s: "):
        scheduler.schedule(0.5)
    with pytest.raises(LayerwiseError, match=r"^end_s: "):
        scheduler.complete(plan, 0.5)
    scheduler.complete(plan, 2.0)
    with pytest.raises(LayerwiseError, match=r"^plan: iteration 0 is not outstanding"):
        scheduler.complete(plan, 3.0)


def test_a_one_token_request_finishes_with_its_prompt() -> None:
    run = serve(requests((0.0, 20, 1)), config())
    (record,) = run.records
    assert record.token_times_s == (record.finish_s,) and record.tpot_s is None and record.itl_s == ()
    assert len(run.iterations) == 1


def test_vllm_starves_newer_decodes_behind_an_older_long_prefill() -> None:
    # No decode-first reordering: running requests go first, in admission order. A (prompt 300) at
    # t=0 takes chunk 128; at t=2.28 it takes the whole budget again and B (arrived at 1 ms) gets
    # nothing; at t=4.56 A's last 44 tokens leave 84 for B's first chunk.
    run = serve(requests((0.0, 300, 2), (1.0, 100, 2)), config(max_model_len_tokens=512, num_blocks=64))
    shares = [[(item.request_id, item.new_tokens) for item in it.plan.items] for it in run.iterations]
    assert shares[:3] == [[(0, 128)], [(0, 128)], [(0, 44), (1, 84)]]


def test_routers_spread_requests() -> None:
    specs = requests(*[(0.0, 8, 4)] * 6)
    scheduler = config(num_blocks=64)
    for router, expected in [("round_robin", [0, 1, 2, 0, 1, 2]), ("least_outstanding", [0, 1, 2, 0, 1, 2])]:
        run = run_serving(OpenLoopSource(specs), scheduler, linear_time_s, replicas=3, router=router)
        assert [record.replica for record in run.records] == expected
    # least_kv: arrivals at t=0 hold no KV yet (admitted when scheduled after the arrivals), so ties
    # fall to the fewest requests in the system: the same spread.
    run = run_serving(OpenLoopSource(specs), scheduler, linear_time_s, replicas=3, router="least_kv")
    assert [record.replica for record in run.records] == [0, 1, 2, 0, 1, 2]


def test_least_kv_prefers_the_replica_holding_fewer_blocks() -> None:
    # Replica 0 gets a long request at t=0 (10 blocks of 16 while it runs), replica 1 a short one
    # (1 block). At 1.5 ms both hold their KV and have one request in the system each: least_kv
    # picks replica 1, least_outstanding ties and picks replica 0.
    specs = requests((0.0, 160, 50), (0.0, 8, 50), (1.5, 8, 2))
    by_kv = run_serving(OpenLoopSource(specs), config(max_num_batched_tokens=256, max_model_len_tokens=256),
                        linear_time_s, replicas=2, router="least_kv")
    by_count = run_serving(OpenLoopSource(specs), config(max_num_batched_tokens=256, max_model_len_tokens=256),
                           linear_time_s, replicas=2, router="least_outstanding")
    assert [record.replica for record in by_kv.records] == [0, 1, 1]
    assert [record.replica for record in by_count.records] == [0, 1, 0]


def test_router_and_driver_arguments_are_checked() -> None:
    with pytest.raises(LayerwiseError, match=r"^router: must be one of"):
        Router("random")
    with pytest.raises(LayerwiseError, match=r"^pipeline_depth: "):
        serve(requests((0.0, 4, 2)), config(), pipeline_depth=0)
    with pytest.raises(LayerwiseError, match=r"^iteration_time_s: returned nan"):
        run_serving(OpenLoopSource(requests((0.0, 4, 2))), config(), lambda plan: float("nan"))


def test_state_samples_follow_the_run() -> None:
    run = serve(requests((0.0, 100, 3), (0.0, 50, 2), (1.0, 30, 2)), config())
    assert run.samples[0].time_s == 0.0 and run.samples[0].num_running == 2
    assert run.samples[-1].num_in_system == 0 and run.samples[-1].time_s == pytest.approx(4.84 * MS)
    assert all(record.status is RequestStatus.FINISHED for record in run.records)
