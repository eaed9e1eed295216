"""The serving executor's parts, by hand: page arithmetic, the pool, plan messages, the host batch,
the reference attention (bottom-right causal over scattered pages) and the path choice on a CPU."""

from __future__ import annotations

import math
import sys
import types
from itertools import pairwise

import pytest
import torch

from executor.serving.attention import (
    CPU_API,
    GATHER,
    PAGED,
    PER_REQUEST,
    VarlenApi,
    attend,
    candidates,
    check_path,
    choose_attention,
    page_tokens_of,
    per_request_attention,
    to_device,
)
from executor.serving.clock import TICKS_PER_S, RunClock
from executor.serving.inputs import HostBatch, TokenHistory, prepare_batch, release
from executor.serving.messages import PLAN, MessageItem, PlanMessage, decode_message
from executor.serving.pages import PagePool, page_tokens_for, pool_pages


def test_pool_size_covers_what_the_scheduler_admits() -> None:
    # 12 blocks of 16 in pages of 64 (4 blocks), at most 6 requests: (12 + 6 * 3) // 4 = 7 pages + 1 scratch.
    assert pool_pages(12, 16, 64, 6) == 8
    assert pool_pages(12, 16, 16, 6) == 13  # pages = blocks: 12 + scratch
    assert page_tokens_for(16, 256) == 256 and page_tokens_for(48, 256) == 768 and page_tokens_for(512, 256) == 512
    assert page_tokens_of(PAGED, 16) == 256 and page_tokens_of(GATHER, 16) == 16
    with pytest.raises(ValueError, match="not a whole number"):
        pool_pages(12, 16, 40, 6)


def test_page_pool_grows_frees_and_maps_slots() -> None:
    pool = PagePool(4, 8)  # pages 0, 1, 2 and scratch 3
    pool.grow(7, 10)  # 2 pages: 0, 1
    pool.grow(9, 3)  # page 2
    assert pool.pages(7) == [0, 1] and pool.pages(9) == [2] and pool.used_pages == 3
    assert pool.slots(7, 6, 10) == [6, 7, 8, 9] and pool.slots(9, 0, 2) == [16, 17]
    with pytest.raises(RuntimeError, match="KV pages exhausted: request 9 needs 1 more pages of 8 tokens, 0 are free"):
        pool.grow(9, 9)
    pool.free(7)
    pool.grow(9, 17)  # 3 pages: 2, then the freed 0 and 1
    assert pool.pages(9) == [2, 0, 1] and pool.slots(9, 15, 17) == [7, 8] and pool.scratch_slot == 24


def test_messages_round_trip() -> None:
    message = PlanMessage(PLAN, 4, 2, 8, True, (MessageItem(3, True, 1, 20, True, 12),
                                               MessageItem(5, False, 6, 6, False, 30)), (1, 2), (9,), (77, 78))
    assert decode_message(message.encode()) == message
    assert message.num_tokens == 7 and [i.request_id for i in message.emitting] == [3]
    assert message.with_stamp(99).stamps == (77, 78, 99)


def test_host_batch_lays_out_rows_slots_and_ids() -> None:
    pool, history = PagePool(6, 4), TokenHistory(seed=1, vocab_size=50)
    prompt_ids = history.ids(0, 5, 0, 5)
    history.append(0, 42)
    items = (MessageItem(0, True, 1, 6, True, 5), MessageItem(1, False, 3, 3, False, 8))
    pool.grow(0, 5)
    batch = prepare_batch(PlanMessage(PLAN, 0, 0, 4, False, items), pool, history)
    assert batch.query_starts == (0, 1, 4) and batch.context_tokens == (6, 3)
    assert batch.page_lists == ((0, 1), (2,)) and batch.slots == (5, 8, 9, 10)
    assert batch.logits_rows == (0,)  # request 1's chunk does not finish its prompt: no token
    assert batch.input_ids == (42, *history.ids(1, 8, 0, 3))
    assert history.ids(0, 5, 0, 5) == prompt_ids
    padded = prepare_batch(PlanMessage(PLAN, 1, 0, 4, True, (MessageItem(0, True, 1, 6, True, 5),)), pool, history)
    assert padded.slots == (5, 20, 20, 20) and padded.input_ids == (42, 0, 0, 0)  # scratch rows
    release(PlanMessage(PLAN, finished_ids=(0,), preempted_ids=(1,)), pool, history)
    assert pool.used_pages == 0 and history.generated(0, 5) == []


def test_reference_attention_is_bottom_right_causal_over_pages() -> None:
    # One item: 2 new tokens, context 3, pages of 2 tokens scattered as [1, 0]; one head of size 1.
    # Keys 0, 1, 2 and values 10, 20, 30. Row 0 (position 1, q = 1) sees keys 0 and 1; row 1
    # (position 2, q = 2) sees all three. Scale 1/sqrt(1).
    k_pages = torch.zeros((3, 2, 1, 1))
    v_pages = torch.zeros((3, 2, 1, 1))
    k_pages[1, 0], k_pages[1, 1], k_pages[0, 0] = 0.0, 1.0, 2.0
    v_pages[1, 0], v_pages[1, 1], v_pages[0, 0] = 10.0, 20.0, 30.0
    host = HostBatch(rows=2, num_tokens=2, query_starts=(0, 2), context_tokens=(3,), page_lists=((1, 0),),
                     slots=(1, 2), logits_rows=(1,), input_ids=None)
    out = per_request_attention(torch.tensor([[[1.0]], [[2.0]]]), k_pages, v_pages, host)
    row0 = (10 + 20 * math.e) / (1 + math.e)
    weights = [math.exp(0), math.exp(2), math.exp(4)]
    row1 = (10 * weights[0] + 20 * weights[1] + 30 * weights[2]) / sum(weights)
    assert out[:, 0, 0].tolist() == pytest.approx([row0, row1], rel=1e-6)


def test_a_cpu_runs_the_reference_path() -> None:
    assert candidates(torch.device("cpu"), CPU_API) == (PER_REQUEST,)
    api = VarlenApi(True, False, "is_causal", False, "an old signature")
    assert candidates(torch.device("cuda"), api) == (GATHER, PER_REQUEST)
    choice = choose_attention("auto", torch.device("cpu"), torch.float32, 4, 2, 16, 16)
    assert (choice.path, choice.page_tokens, choice.how) == (PER_REQUEST, 16, "the only path here")
    assert choice.checks[PER_REQUEST] == "agrees with the reference"
    with pytest.raises(ValueError, match="attention path paged-varlen is not available here"):
        choose_attention(PAGED, torch.device("cpu"), torch.float32, 4, 2, 16, 16)


def test_the_clock_stamps_dyadic_increasing_seconds() -> None:
    clock = RunClock()
    stamps = [clock.stamp() for _ in range(50)]
    assert all(b > a for a, b in pairwise(stamps))
    assert all(s * TICKS_PER_S == int(s * TICKS_PER_S) for s in stamps)
    assert (stamps[10] - stamps[3]) + stamps[3] == stamps[10]  # exact arithmetic


def _emulated_varlen(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seq_q: torch.Tensor,
                     cu_seq_k: torch.Tensor | None, max_q: int, max_k: int, *, window_size: tuple[int, int] = (-1, -1),
                     enable_gqa: bool = False, seqused_k: torch.Tensor | None = None,
                     block_table: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
    """``varlen_attn`` as its documentation states it (FlashAttention's bottom-right causal mask),
    in plain torch: what the CUDA paths are called with is checked here on a CPU."""
    causal = is_causal or window_size == (-1, 0)
    out = torch.zeros_like(query)
    for i in range(cu_seq_q.numel() - 1):
        qs, qe = int(cu_seq_q[i]), int(cu_seq_q[i + 1])
        if block_table is not None:
            assert seqused_k is not None
            used = int(seqused_k[i])
            keys = key[block_table[i].long()].reshape(-1, *key.shape[2:])[:used]
            values = value[block_table[i].long()].reshape(-1, *value.shape[2:])[:used]
        else:
            assert cu_seq_k is not None
            ks, ke = int(cu_seq_k[i]), int(cu_seq_k[i + 1])
            keys, values = key[ks:ke], value[ks:ke]
        new, context = qe - qs, keys.shape[0]
        if keys.shape[1] != query.shape[1] and not enable_gqa:
            raise ValueError("heads differ and enable_gqa is off")
        mask = None
        if causal:
            mask = torch.arange(context).unsqueeze(0) <= (context - new + torch.arange(new)).unsqueeze(1)
        attn = torch.nn.functional.scaled_dot_product_attention(
            query[qs:qe].transpose(0, 1).unsqueeze(0), keys.transpose(0, 1).unsqueeze(0),
            values.transpose(0, 1).unsqueeze(0), attn_mask=mask, enable_gqa=enable_gqa)
        out[qs:qe] = attn[0].transpose(0, 1)
    return out


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(("path", "api"), [
    (PAGED, VarlenApi(True, True, "window", True, "2.13")),
    (GATHER, VarlenApi(True, False, "window", True, "window, no pages")),
    (GATHER, VarlenApi(True, False, "is_causal", False, "an old signature: is_causal, no enable_gqa")),
])
def test_the_varlen_paths_pass_what_the_kernel_reads(path: str, api: VarlenApi,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("torch.nn.attention.varlen")
    fake.varlen_attn = _emulated_varlen  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.nn.attention.varlen", fake)
    # the start-up check (a decode, a chunk after a prefix, a fresh prompt) agrees with the reference
    assert check_path(path, torch.device("cpu"), torch.float32, 4, 2, 16, 16, api) == ""
    # and so does a batch laid out by the pool, pages out of order
    pool = PagePool(12, page_tokens_of(path, 16))
    pool.grow(99, 3 * pool.page_tokens)  # taken and freed: the next requests get pages out of order
    pool.grow(1, pool.page_tokens + 3)
    pool.free(99)
    items = (MessageItem(1, True, 1, pool.page_tokens + 4, True, 5), MessageItem(2, False, 6, 9, True, 9))
    host = prepare_batch(PlanMessage(PLAN, 0, 0, 7, False, items), pool, None)
    generator = torch.Generator().manual_seed(3)
    k_pages = torch.randn((12, pool.page_tokens, 2, 16), generator=generator)
    v_pages = torch.randn(k_pages.shape, generator=generator)
    q = torch.randn((7, 4, 16), generator=generator)
    batch = to_device(host, path, torch.device("cpu"), pool.page_tokens, max_pages=4)
    torch.testing.assert_close(attend(path, q, k_pages, v_pages, batch, api),
                               per_request_attention(q, k_pages, v_pages, host))
