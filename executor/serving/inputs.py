"""One iteration's inputs, built on the host from a plan message: the work a serving engine does
between two forwards (vLLM's ``InputBatch``/``_prepare_inputs``), timed as host cost.

Items run in plan order, each contributing its new tokens as consecutive rows; a row's key and value
go to the slot of its position (``PagePool.slots``); attention of item i reads its first
``context_tokens[i]`` positions (its cached prefix and its new tokens, causally). Stage 0 also looks
up the token ids: the prompt's (seeded per request) and then the generated ones (``TokenHistory``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from executor.serving.messages import PlanMessage
from executor.serving.pages import PagePool


class TokenHistory:
    """Stage 0's token ids per live request: the seeded prompt, then every sampled token."""

    def __init__(self, seed: int, vocab_size: int) -> None:
        self.seed = seed
        self.vocab_size = vocab_size
        self._ids: dict[int, list[int]] = {}

    def ids(self, request_id: int, prompt_tokens: int, start: int, stop: int) -> list[int]:
        """Token ids of positions [start, stop) (prompt first, then generated)."""
        known = self._ids.get(request_id)
        if known is None:
            rng = np.random.default_rng([self.seed, request_id])
            known = self._ids[request_id] = [int(t) for t in rng.integers(0, self.vocab_size, prompt_tokens)]
        if stop > len(known):
            raise RuntimeError(f"request {request_id}: positions up to {stop} asked, {len(known)} tokens known")
        return known[start:stop]

    def append(self, request_id: int, token: int) -> None:
        self._ids[request_id].append(token)

    def generated(self, request_id: int, prompt_tokens: int) -> list[int]:
        return self._ids.get(request_id, [])[prompt_tokens:]

    def drop(self, request_id: int) -> None:
        self._ids.pop(request_id, None)


@dataclass(frozen=True)
class HostBatch:
    """One iteration on one rank, before the copy to the device. Shapes: N items, T scheduled
    tokens, R >= T rows (a CUDA-graph batch pads decodes with rows that write the scratch slot)."""

    rows: int
    num_tokens: int
    query_starts: tuple[int, ...]  # (N + 1,) first row of each item, then T
    context_tokens: tuple[int, ...]  # (N,) positions item i attends to
    page_lists: tuple[tuple[int, ...], ...]  # (N,) pages holding item i's KV
    slots: tuple[int, ...]  # (R,) where each row's key and value are written
    logits_rows: tuple[int, ...]  # rows that sample a token: each emitting item's last row
    input_ids: tuple[int, ...] | None  # (R,) stage 0's token ids, else None


def release(message: PlanMessage, pool: PagePool, history: TokenHistory | None) -> None:
    """Drop the KV (and, for finished requests, the token ids) the message says are gone."""
    for request_id in message.finished_ids:
        pool.free(request_id)
        if history is not None:
            history.drop(request_id)
    for request_id in message.preempted_ids:
        pool.free(request_id)  # its token ids stay: it re-prefills prompt + generated tokens


def prepare_batch(message: PlanMessage, pool: PagePool, history: TokenHistory | None) -> HostBatch:
    """Grow each item's pages and list its rows' slots, attention extents and (stage 0) token ids."""
    starts, contexts, pages, slots, logits_rows, ids = [0], [], [], [], [], []
    for item in message.items:
        prefix = item.context_tokens - item.new_tokens
        pool.grow(item.request_id, item.context_tokens)
        slots += pool.slots(item.request_id, prefix, item.context_tokens)
        pages.append(tuple(pool.pages(item.request_id)))
        contexts.append(item.context_tokens)
        starts.append(starts[-1] + item.new_tokens)
        if item.emits_token:
            logits_rows.append(starts[-1] - 1)
        if history is not None:
            ids += history.ids(item.request_id, item.prompt_tokens, prefix, item.context_tokens)
    padding = message.rows - starts[-1]
    if padding < 0:
        raise RuntimeError(f"iteration {message.iteration}: {starts[-1]} tokens in {message.rows} rows")
    slots += [pool.scratch_slot] * padding
    ids += [0] * padding
    return HostBatch(rows=message.rows, num_tokens=starts[-1], query_starts=tuple(starts),
                     context_tokens=tuple(contexts), page_lists=tuple(pages), slots=tuple(slots),
                     logits_rows=tuple(logits_rows), input_ids=tuple(ids) if history is not None else None)
