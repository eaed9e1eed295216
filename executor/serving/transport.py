"""Who a rank talks to while serving, and how.

Control (plan messages, heartbeats, stop) goes over a gloo group of all ranks as CPU integers, as
vLLM sends its scheduler output apart from the tensors; hidden rows go down the pipeline edges and
sampled tokens back over the loop-back group (``executor.groups``: NCCL on GPUs, gloo on CPUs).
Rank 0 sends each plan to its stage's TP peers before the forward; every rank of a stage that is
not the last sends the plan and its output rows to its next-stage ranks after it (``executor.layout``).

Sends never block the sender (``Outbox``: isend, kept alive, waited later). A token message is
received asynchronously (``TokenInbox``): NCCL work can be polled; a gloo receive completes only
inside ``wait()``, so a helper thread waits on it (gloo releases the GIL while it waits).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from executor.groups import StageGroups
from executor.layout import RankLayout
from executor.serving.messages import PlanMessage


@dataclass(frozen=True)
class Links:
    """This rank's peers: ``ctrl`` (gloo, all ranks) for messages, ``groups`` for tensors (None
    in a one-process run, which talks to no one)."""

    layout: RankLayout
    ctrl: Any | None
    groups: StageGroups | None

    @property
    def plan_peers(self) -> tuple[int, ...]:
        """Rank 0: the other ranks of stage 0 (its TP group), sent each plan before the forward."""
        return tuple(r for r in self.layout.stage_ranks[0] if r != self.layout.rank) if self.layout.rank == 0 else ()

    @property
    def plan_source(self) -> int | None:
        """Where this rank's plan messages come from (None on rank 0, which makes them)."""
        layout = self.layout
        if layout.rank == 0:
            return None
        return 0 if layout.is_first_stage else layout.recv_from


class Outbox:
    """Sends in flight: their work and the tensors they read, kept until waited for."""

    def __init__(self) -> None:
        self._pending: list[tuple[Any, torch.Tensor]] = []

    def send(self, tensor: torch.Tensor, dst: int, group: Any) -> None:
        self._pending.append((dist.isend(tensor, dst=dst, group=group), tensor))

    def send_message(self, message: PlanMessage, destinations: tuple[int, ...], group: Any) -> None:
        body = torch.tensor(message.encode(), dtype=torch.int64)
        for dst in destinations:
            self.send(torch.tensor([body.numel()], dtype=torch.int64), dst, group)
            self.send(body, dst, group)

    def flush(self) -> None:
        for work, _ in self._pending:
            work.wait()
        self._pending.clear()


@dataclass
class PendingTokens:
    """A token message on its way to a stage-0 rank: (1 + n + d - 2,) int64, the count n, the
    sampled tokens in the iteration's emitting order, the middle stages' ticks."""

    iteration: int
    message: PlanMessage
    buffer: torch.Tensor
    work: Any
    done: threading.Event = field(default_factory=threading.Event)
    cuda: bool = False
    error: BaseException | None = None  # a gloo receive that failed in the helper thread

    def ready(self) -> bool:
        return self.work.is_completed() if self.cuda else self.done.is_set()

    def values(self) -> list[int]:
        """Blocks until received; the message as integers."""
        if self.cuda:
            self.work.wait()
        else:  # the helper thread waited (a gloo work must not be waited on twice)
            self.done.wait()
            if self.error is not None:
                raise self.error
        return [int(v) for v in self.buffer.cpu().tolist()]


class TokenInbox:
    """Stage 0's token messages of a pipeline, in iteration order (the pipeline keeps that order)."""

    def __init__(self, source: int, group: Any, device: torch.device, middle_stages: int) -> None:
        self.source, self.group, self.device, self.middle_stages = source, group, device, middle_stages
        self.pending: deque[PendingTokens] = deque()
        self.taken = 0

    def post(self, message: PlanMessage) -> PendingTokens:
        size = 1 + len(message.emitting) + self.middle_stages
        buffer = torch.zeros(size, dtype=torch.int64, device=self.device)
        work = dist.irecv(buffer, src=self.source, group=self.group)
        entry = PendingTokens(message.iteration, message, buffer, work, cuda=self.device.type == "cuda")
        if not entry.cuda:
            threading.Thread(target=_wait_and_set, args=(entry,), daemon=True).start()
        self.pending.append(entry)
        return entry

    def head_ready(self) -> bool:
        return bool(self.pending) and self.pending[0].ready()

    def take(self) -> tuple[PendingTokens, list[int], list[int]]:
        """The oldest message: (entry, its tokens, the middle stages' ticks); blocks until it is here."""
        entry = self.pending.popleft()
        values = entry.values()
        count = values[0]
        self.taken += 1
        return entry, values[1:1 + count], values[1 + count:]


def _wait_and_set(entry: PendingTokens) -> None:
    try:
        entry.work.wait()
    except BaseException as exc:  # a peer died or timed out: the main thread raises it
        entry.error = exc
    finally:
        entry.done.set()
