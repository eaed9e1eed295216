"""Hand-worked timelines of the scheduler and the driver: every expected time is worked out below.

An iteration takes T = 1 ms + 0.01 ms x (its padded tokens). Unless a test says otherwise:
budget 128 tokens, max_num_seqs 4, blocks of 16 tokens, 64 blocks, max_model_len 128, depth 1.

Three requests:   A: arrives 0 ms, prompt 100, output 3
                  B: arrives 0 ms, prompt  50, output 2
                  C: arrives 1 ms, prompt  30, output 2
"""

from __future__ import annotations

import pytest
from serving_cases import MS, config, requests, serve, token_times_ms

from serving.batch import DECODE, PREFILL
from serving.requests import RequestStatus

ABC = requests((0.0, 100, 3), (0.0, 50, 2), (1.0, 30, 2))


def _ms(value: float | None) -> float:
    assert value is not None
    return value / MS


def test_vllm_chunked_prefill_timeline() -> None:
    # t=0     running none; admit A: 100 tokens (budget 28 left), admit B: chunk 28 (budget 0).
    #         T = 1 + 1.28 = 2.28 -> ends 2.28; A's prompt done: A token 1 at 2.28.
    # t=2.28  running first: A decode (ctx 101), B chunk 22 (ctx 50, prompt done); then C
    #         (arrived at 1) admitted whole: 30. 53 tokens, T = 1.53 -> 3.81: A tok 2, B tok 1, C tok 1.
    # t=3.81  A, B, C decode: 3 tokens, T = 1.03 -> 4.84: A tok 3, B tok 2, C tok 2: all finish.
    run = serve(ABC, config(policy="vllm"))
    assert token_times_ms(run) == {0: [2.28, 3.81, 4.84], 1: [3.81, 4.84], 2: [3.81, 4.84]}
    a, b, c = run.records
    assert (_ms(a.ttft_s), _ms(a.e2e_s), _ms(a.tpot_s)) == pytest.approx((2.28, 4.84, (4.84 - 2.28) / 2), rel=1e-12)
    assert (_ms(b.ttft_s), _ms(b.e2e_s), _ms(b.tpot_s)) == pytest.approx((3.81, 4.84, 1.03), rel=1e-12)
    assert (_ms(c.ttft_s), _ms(c.e2e_s), _ms(c.tpot_s)) == pytest.approx((2.81, 3.84, 1.03), rel=1e-12)
    assert [_ms(r.queueing_s) for r in run.records] == pytest.approx([0.0, 0.0, 1.28], abs=1e-12)
    first, second, third = (it.plan for it in run.iterations)
    assert [(i.request_id, i.kind, i.new_tokens, i.context_tokens, i.emits_token) for i in first.items] == [
        (0, PREFILL, 100, 100, True), (1, PREFILL, 28, 28, False)]
    assert [(i.request_id, i.kind, i.new_tokens, i.context_tokens) for i in second.items] == [
        (0, DECODE, 1, 101), (1, PREFILL, 22, 50), (2, PREFILL, 30, 30)]
    assert third.decode_only and third.num_tokens == 3
    assert [_ms(it.start_s) for it in run.iterations] == pytest.approx([0.0, 2.28, 3.81], rel=1e-12)
    assert [_ms(it.end_s) for it in run.iterations] == pytest.approx([2.28, 3.81, 4.84], rel=1e-12)


def test_prefill_first_admits_whole_prompts_only() -> None:
    # t=0     admit A (100, budget 28 left); B's 50 > 28: head-of-line, stop. T = 2.00 -> A tok 1 at 2.00.
    # t=2.00  A decode (1); admit B (50) and C (30): 81 tokens, T = 1.81 -> 3.81: A 2, B 1, C 1.
    # t=3.81  three decodes, T = 1.03 -> 4.84: everyone done.
    run = serve(ABC, config(policy="prefill-first"))
    assert token_times_ms(run) == {0: [2.0, 3.81, 4.84], 1: [3.81, 4.84], 2: [3.81, 4.84]}
    a, b, c = run.records
    assert (_ms(a.ttft_s), _ms(a.e2e_s), _ms(a.tpot_s)) == pytest.approx((2.0, 4.84, 1.42), rel=1e-12)
    assert (_ms(b.ttft_s), _ms(b.e2e_s), _ms(b.tpot_s)) == pytest.approx((3.81, 4.84, 1.03), rel=1e-12)
    assert (_ms(c.ttft_s), _ms(c.e2e_s), _ms(c.tpot_s)) == pytest.approx((2.81, 3.84, 1.03), rel=1e-12)
    assert [_ms(r.queueing_s) for r in run.records] == pytest.approx([0.0, 2.0, 1.0], abs=1e-12)


def test_static_batching_runs_a_batch_to_completion() -> None:
    # t=0     nothing runs: admit A (100); B's 50 does not fit the 28 left. T = 2.00 -> A tok 1.
    # t=2.00  A decodes alone (the batch only shrinks): T = 1.01 -> 3.01 tok 2; -> 4.02 tok 3, done.
    # t=4.02  batch empty: admit B (50) and C (30): 80 tokens, T = 1.80 -> 5.82: B 1, C 1.
    # t=5.82  two decodes, T = 1.02 -> 6.84: both done.
    run = serve(ABC, config(policy="static"))
    assert token_times_ms(run) == {0: [2.0, 3.01, 4.02], 1: [5.82, 6.84], 2: [5.82, 6.84]}
    a, b, c = run.records
    assert (_ms(a.ttft_s), _ms(a.e2e_s), _ms(a.tpot_s)) == pytest.approx((2.0, 4.02, 1.01), rel=1e-12)
    assert (_ms(b.ttft_s), _ms(b.e2e_s), _ms(b.tpot_s)) == pytest.approx((5.82, 6.84, 1.02), rel=1e-12)
    assert (_ms(c.ttft_s), _ms(c.e2e_s), _ms(c.tpot_s)) == pytest.approx((4.82, 5.84, 1.02), rel=1e-12)


def test_static_is_the_fixed_batch_benchmark() -> None:
    # Four requests of prompt 10, output 3 at t=0, max_num_seqs 4: one prefill of 40 tokens
    # (T = 1.40), then two decode steps of 4 tokens (T = 1.04 each): tokens at 1.40, 2.44, 3.48.
    specs = requests(*[(0.0, 10, 3)] * 4)
    run = serve(specs, config(policy="static"))
    assert token_times_ms(run) == {index: [1.4, 2.44, 3.48] for index in range(4)}
    assert [it.plan.num_seqs for it in run.iterations] == [4, 4, 4]


@pytest.mark.parametrize("num_blocks", [4, 5], ids=["victim-is-the-newest-other", "victim-is-itself"])
def test_preemption_by_recompute(num_blocks: int) -> None:
    # Blocks of 4 tokens. A and B: prompt 8, output 6, at t=0 (each at most 13 tokens of KV: 4 blocks).
    # t=0     A 8 tokens (2 blocks), B 8 tokens (2 blocks). T = 1.16 -> both tok 1 at 1.16.
    # t=1.16  A's decode writes token 9: a third block.
    #         4 blocks: none free, the newest running (B) is preempted, A gets a freed block.
    #         5 blocks: A takes the last free one; B's decode then finds none; the newest is B
    #         itself: B preempts itself. Either way B is back at the head of the queue with its
    #         one token emitted and 0 computed, and nobody is admitted in this iteration.
    #         A decodes alone: T = 1.01 -> 2.17 (tok 2), 3.18, 4.19, 5.20, 6.21 (tok 6: done).
    #         B's re-prefill needs 9 tokens (3 blocks): not free until A finishes.
    # t=6.21  B re-prefills prompt + its token: 9 tokens, T = 1.09 -> 7.30 (tok 2), then decodes
    #         8.31, 9.32, 10.33, 11.34 (tok 6: done).
    specs = requests((0.0, 8, 6), (0.0, 8, 6))
    run = serve(specs, config(block_size_tokens=4, num_blocks=num_blocks, max_model_len_tokens=64,
                              max_num_batched_tokens=64))
    assert token_times_ms(run) == {0: [1.16, 2.17, 3.18, 4.19, 5.20, 6.21],
                                   1: [1.16, 7.30, 8.31, 9.32, 10.33, 11.34]}
    a, b = run.records
    assert (a.preemptions, b.preemptions) == (0, 1)
    assert _ms(b.tpot_s) == pytest.approx((11.34 - 1.16) / 5, rel=1e-12)
    assert [round(gap / MS, 9) for gap in b.itl_s] == [6.14, 1.01, 1.01, 1.01, 1.01]
    second = run.iterations[1].plan
    assert second.preempted_ids == (1,) and second.request_ids == (0,)
    resumed = next(it.plan for it in run.iterations if 1 in it.plan.request_ids and it.start_s > 2 * MS)
    assert resumed.items[0].kind == PREFILL and resumed.items[0].new_tokens == 9 and resumed.items[0].emits_token
    assert max(it.kv_blocks_used for it in run.iterations) <= num_blocks


def test_requests_that_can_never_fit_are_rejected_and_counted() -> None:
    # max_model_len 64, 4 blocks of 4 tokens (16 tokens of KV):
    # 0: prompt 8, output 4 -> 11 tokens of KV, 3 blocks: served.
    # 1: prompt 60, output 10 -> 70 > 64 tokens: rejected at arrival.
    # 2: prompt 14, output 4 -> 17 tokens of KV, 5 blocks > 4: rejected at arrival.
    # 3: arrives 0.5 ms, prompt 4, output 2: served once 0 has finished (blocks).
    # t=0    request 0: 8 tokens, T = 1.08 -> tok 1; decodes 2.09, 3.10, 4.11 (done).
    # t=4.11 request 3: 4 tokens, T = 1.04 -> 5.15 tok 1; decode -> 6.16 done.
    specs = requests((0.0, 8, 4), (0.0, 60, 10), (0.0, 14, 4), (0.5, 4, 2))
    run = serve(specs, config(block_size_tokens=4, num_blocks=4, max_model_len_tokens=64,
                              max_num_batched_tokens=64, max_num_seqs=1))
    assert [record.status for record in run.records] == [
        RequestStatus.FINISHED, RequestStatus.REJECTED, RequestStatus.REJECTED, RequestStatus.FINISHED]
    assert "max_model_len_tokens 64" in run.records[1].rejected_because
    assert "5 blocks" in run.records[2].rejected_because
    assert run.records[1].token_times_s == () and run.records[1].ttft_s is None
    assert token_times_ms(run)[0] == [1.08, 2.09, 3.10, 4.11]
    assert token_times_ms(run)[3] == [5.15, 6.16]
    assert len(run.rejected) == 2


def test_pipeline_depth_two_keeps_two_iterations_in_flight() -> None:
    # Depth 2: a stage takes T/2; budget 10. A and B: prompt 10, output 2, at t=0.
    # t=0     A's prompt (10 tokens, budget spent): T = 1.10, stages [0, 0.55] [0.55, 1.10].
    # t=0.55  stage 1 free, one in flight: A is in flight, admit B: stages [0.55, 1.10] [1.10, 1.65].
    # t=1.10  A's prefill ends (tok 1). Schedule A's decode: T = 1.01: stage 1 [1.10, 1.605],
    #         stage 2 busy until 1.65 -> [1.65, 2.155].
    # t=1.65  B tok 1. B decodes: stage 1 [1.65, 2.155], stage 2 [2.155, 2.66].
    # t=2.155 A tok 2 (done); t=2.66 B tok 2 (done).
    specs = requests((0.0, 10, 2), (0.0, 10, 2))
    run = serve(specs, config(max_num_batched_tokens=10, block_size_tokens=8, max_model_len_tokens=64),
                pipeline_depth=2)
    assert token_times_ms(run) == {0: [1.1, 2.155], 1: [1.65, 2.66]}
    assert [_ms(it.start_s) for it in run.iterations] == pytest.approx([0.0, 0.55, 1.1, 1.65], rel=1e-12)
    assert [_ms(it.end_s) for it in run.iterations] == pytest.approx([1.1, 1.65, 2.155, 2.66], rel=1e-12)
    assert [it.plan.request_ids for it in run.iterations] == [(0,), (1,), (0,), (1,)]


def test_decode_only_iterations_are_padded_to_the_next_graph_size() -> None:
    # Three requests, prompt 4, output 2, graphs for 1, 2, 4 and 8 sequences.
    # t=0     12 prompt tokens (mixed/prefill: eager, unpadded): T = 1.12.
    # t=1.12  three decodes padded to the graph of 4: T = 1.04 -> 2.16.
    specs = requests((0.0, 4, 2), (0.0, 4, 2), (0.0, 4, 2))
    run = serve(specs, config(cuda_graph_sizes=(1, 2, 4, 8)))
    prefill, decode = (it.plan for it in run.iterations)
    assert (prefill.padded_tokens, prefill.cuda_graph) == (12, False)
    assert (decode.num_tokens, decode.padded_tokens, decode.cuda_graph) == (3, 4, True)
    assert _ms(run.iterations[1].end_s) == pytest.approx(2.16, rel=1e-12)
    beyond = serve(requests(*[(0.0, 4, 2)] * 3), config(cuda_graph_sizes=(1, 2)))
    assert (beyond.iterations[1].plan.padded_tokens, beyond.iterations[1].plan.cuda_graph) == (3, False)


def test_reserve_full_prompt_holds_admission_until_the_whole_prompt_fits() -> None:
    # Blocks of 4, 5 blocks, budget 12. Request 0: prompt 8, output 3; request 1: prompt 16, output 2.
    # t=0  request 0: 8 tokens, 2 blocks; 4 tokens of budget and 3 blocks left.
    #      vLLM 0.11: request 1's first chunk (4 tokens, 1 block) is admitted.
    #      vLLM 0.34 (reserve_full_prompt): its whole prompt needs 4 blocks > 3 free: it waits.
    specs = requests((0.0, 8, 3), (0.0, 16, 2))
    shape = {"block_size_tokens": 4, "num_blocks": 5, "max_num_batched_tokens": 12, "max_model_len_tokens": 32}
    loose = serve(specs, config(**shape))
    strict = serve(specs, config(**shape, reserve_full_prompt=True))
    assert [(i.request_id, i.new_tokens) for i in loose.iterations[0].plan.items] == [(0, 8), (1, 4)]
    assert [(i.request_id, i.new_tokens) for i in strict.iterations[0].plan.items] == [(0, 8)]
    assert all(record.finished for record in loose.records + strict.records)
