"""What rank 0 tells the other ranks each iteration, as a list of integers (control plane, gloo).

A plan message carries the scheduler's batch (each item with its request's prompt length, which
stage 0 needs to tell prompt tokens from generated ones), the requests whose KV to drop before it
(finished since the last plan, preempted by this one), how many iterations rank 0 has completed
(stage-0 peers take that many token messages first), whether it replays a CUDA graph and over how
many rows, and, as it travels down a pipeline, each middle stage's end-of-forward tick.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.distributed as dist

from serving.batch import DECODE, IterationPlan

PLAN, HEARTBEAT, STOP, CLOCK = 0, 1, 2, 3
_HEADER = 9
_ITEM = 6


@dataclass(frozen=True)
class MessageItem:
    request_id: int
    decode: bool
    new_tokens: int
    context_tokens: int
    emits_token: bool
    prompt_tokens: int


@dataclass(frozen=True)
class PlanMessage:
    """One message; ``kind`` PLAN (an iteration to run), HEARTBEAT (nothing: rank 0 is idle), CLOCK
    (the run's clock starts at ``iteration`` ns of the host's monotonic clock) or STOP."""

    kind: int
    iteration: int = -1
    completions: int = 0
    rows: int = 0  # rows the forward runs: the graph's batch size, else the scheduled tokens
    graph: bool = False
    items: tuple[MessageItem, ...] = ()
    finished_ids: tuple[int, ...] = ()
    preempted_ids: tuple[int, ...] = ()
    stamps: tuple[int, ...] = ()  # end-of-forward ticks of stages 1, 2, ... (added on the way)

    @property
    def num_tokens(self) -> int:
        return sum(item.new_tokens for item in self.items)

    @property
    def emitting(self) -> tuple[MessageItem, ...]:
        return tuple(item for item in self.items if item.emits_token)

    def with_stamp(self, ticks: int) -> PlanMessage:
        return replace(self, stamps=(*self.stamps, ticks))

    def encode(self) -> list[int]:
        out = [self.kind, self.iteration, self.completions, self.rows, int(self.graph), len(self.items),
               len(self.finished_ids), len(self.preempted_ids), len(self.stamps)]
        for item in self.items:
            out += [item.request_id, int(item.decode), item.new_tokens, item.context_tokens, int(item.emits_token),
                    item.prompt_tokens]
        return out + list(self.finished_ids) + list(self.preempted_ids) + list(self.stamps)


def decode_message(values: list[int]) -> PlanMessage:
    kind, iteration, completions, rows, graph, n_items, n_finished, n_preempted, n_stamps = values[:_HEADER]
    at = _HEADER
    items = []
    for _ in range(n_items):
        rid, decode, new, ctx, emits, prompt = values[at:at + _ITEM]
        items.append(MessageItem(rid, bool(decode), new, ctx, bool(emits), prompt))
        at += _ITEM
    finished = tuple(values[at:at + n_finished])
    at += n_finished
    preempted = tuple(values[at:at + n_preempted])
    at += n_preempted
    stamps = tuple(values[at:at + n_stamps])
    return PlanMessage(kind, iteration, completions, rows, bool(graph), tuple(items), finished, preempted, stamps)


def plan_message(plan: IterationPlan, prompt_tokens: dict[int, int], finished_ids: tuple[int, ...],
                 completions: int, graph: bool) -> PlanMessage:
    """The message for ``plan``: graph replay over ``plan.padded_tokens`` rows when ``graph``."""
    items = tuple(MessageItem(i.request_id, i.kind == DECODE, i.new_tokens, i.context_tokens, i.emits_token,
                              prompt_tokens[i.request_id]) for i in plan.items)
    return PlanMessage(PLAN, plan.iteration, completions, plan.padded_tokens if graph else plan.num_tokens, graph,
                       items, finished_ids, plan.preempted_ids)


def send_message(message: PlanMessage, dst: int, group: Any) -> None:
    """Length, then body, as int64 CPU tensors (blocking; a control message is small)."""
    body = torch.tensor(message.encode(), dtype=torch.int64)
    dist.send(torch.tensor([body.numel()], dtype=torch.int64), dst=dst, group=group)
    dist.send(body, dst=dst, group=group)


def recv_message(src: int, group: Any) -> PlanMessage:
    length = torch.zeros(1, dtype=torch.int64)
    dist.recv(length, src=src, group=group)
    body = torch.zeros(int(length.item()), dtype=torch.int64)
    dist.recv(body, src=src, group=group)
    return decode_message([int(v) for v in body.tolist()])

