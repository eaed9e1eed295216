"""The disaggregated driver on hand-worked cases: a prefill pool and a decode pool with constant
iteration times and a constant KV transfer time, every timestamp worked out by hand."""

from __future__ import annotations

import pytest
from serving_cases import MS, config, requests

from serving.batch import IterationPlan
from serving.disaggregated import DECODE_POOL, PREFILL_POOL, DisaggregatedRun, Pool, run_disaggregated
from serving.requests import RequestStatus
from serving.sources import OpenLoopSource
from topology.errors import LayerwiseError

PREFILL_S, DECODE_S = 10 * MS, 4 * MS  # every iteration of each pool, whatever it holds


def _prefill_s(plan: IterationPlan) -> float:
    return PREFILL_S


def _decode_s(plan: IterationPlan) -> float:
    return DECODE_S


def _run(rows: tuple[tuple[float, int, int], ...], transfer_s: float, decode_replicas: int = 1) -> DisaggregatedRun:
    return run_disaggregated(OpenLoopSource(requests(*rows)), Pool(config(), 1, 1, _prefill_s),
                             Pool(config(), decode_replicas, 1, _decode_s), "round_robin",
                             lambda prompt, source, target: transfer_s)


def _ms(values: tuple[float, ...]) -> list[float]:
    return [round(v / MS, 9) for v in values]


def test_two_requests_share_one_link_and_decode_after_their_kv_arrives() -> None:
    # A (0 ms, 100-token prompt, 3 tokens) and B (1 ms, 50, 2); prefill 10 ms, decode 4 ms, KV 15 ms.
    # Prefill: A in [0, 10] (first token at 10), B waits for the replica: [10, 20] (first token at 20).
    # KV: A's in [10, 25]; B's is ready at 20 but the send side is busy until 25: [25, 40].
    # Decode: A from 25: tokens at 29 and 33 (done); B from 40: its token at 44 (done).
    run = _run(((0.0, 100, 3), (1.0, 50, 2)), 15 * MS)
    a, b = run.records
    assert _ms(a.token_times_s) == [10.0, 29.0, 33.0] and _ms(b.token_times_s) == [20.0, 44.0]
    assert a.status is b.status is RequestStatus.FINISHED
    assert a.first_token_s is not None and b.first_token_s is not None and b.finish_s is not None
    assert round(a.first_token_s - a.arrival_s, 12) == round(10 * MS, 12)  # TTFT: the prefill alone
    assert round(b.first_token_s - b.arrival_s, 12) == round(19 * MS, 12)  # 9 ms queued behind A
    assert round(b.finish_s - b.arrival_s, 12) == round(43 * MS, 12)  # E2E: the 5 ms wait for the link counts
    assert [(t.request_id, _ms((t.ready_s, t.start_s, t.end_s))) for t in run.transfers] == [
        (0, [10.0, 10.0, 25.0]), (1, [20.0, 25.0, 40.0])]
    decode = [it for it in run.iterations if it.pool == DECODE_POOL]
    assert [(it.plan.items[0].request_id, it.plan.items[0].new_tokens, it.plan.items[0].context_tokens)
            for it in decode] == [(0, 1, 101), (0, 1, 102), (1, 1, 51)]  # decodes only: the prompt came with the KV
    assert [_ms((it.start_s, it.end_s)) for it in run.iterations if it.pool == PREFILL_POOL] == [[0.0, 10.0],
                                                                                                [10.0, 20.0]]


def test_one_token_request_never_leaves_its_prefill_replica() -> None:
    run = _run(((0.0, 40, 1),), 15 * MS)
    (record,) = run.records
    assert record.finish_s is not None
    assert _ms(record.token_times_s) == [10.0] and round(record.finish_s / MS, 9) == 10.0
    assert run.transfers == () and {it.pool for it in run.iterations} == {PREFILL_POOL}


def test_two_decode_replicas_receive_in_parallel() -> None:
    # Round robin sends A's KV to decode 0 and B's to decode 1: B's transfer waits only for the prefill
    # replica's send side (free at 25), so the same times as above but B's on its own replica.
    run = _run(((0.0, 100, 3), (1.0, 50, 2)), 15 * MS, decode_replicas=2)
    assert [(t.decode_replica, _ms((t.start_s, t.end_s))) for t in run.transfers] == [(0, [10.0, 25.0]),
                                                                                     (1, [25.0, 40.0])]
    assert [r.replica for r in run.records] == [0, 1]


def test_a_request_that_cannot_fit_a_decode_replica_is_rejected_at_arrival() -> None:
    run = _run(((0.0, 100, 40),), 15 * MS)  # 140 tokens > max_model_len_tokens 128
    (record,) = run.records
    assert record.status is RequestStatus.REJECTED and "max_model_len_tokens" in record.rejected_because
    assert run.iterations == ()


def test_bad_pool_is_one_error() -> None:
    with pytest.raises(LayerwiseError, match="decode_replicas"):
        run_disaggregated(OpenLoopSource(()), Pool(config(), 1, 1, _prefill_s), Pool(config(), 0, 1, _decode_s),
                          "round_robin", lambda prompt, source, target: 0.0)
