"""The fast path's state of one request (``LiveRequest``) and of a group of decoders that advance
together (``Cohort``).

A **cohort** is the decoding requests of one iteration: scheduled as one, each takes exactly one token
per step (a decode: ``computed + 1 == known``), and each emits one token when the step completes. Its
members' state is kept relative to its step count ``steps``: member r has ``computed = offset_r +
steps``, so a step costs O(1) however many members it has:

* the KV blocks a step needs: a member needs one more block when its computed tokens are a multiple
  of the block size before the step (``ceil((c + 1) / b) > ceil(c / b)`` iff ``c % b == 0``), so the
  cohort counts its members by ``offset % block_size`` (``residues``) and needs
  ``residues[-steps % block_size]`` blocks;
* the decodes' context sum (what attention reads): ``sum(offsets) + size * steps``;
* who finishes: each member's finishing step is known when it joins (a heap by step, then admission
  order);
* token times: the cohort logs each step's completion time once; a member's tokens inside it are a
  slice of that log.

A ``LiveRequest`` outside a cohort (waiting, prefilling, or loose after an exact pass) holds its own
``computed_tokens``, ``emitted_tokens`` and ``held_blocks``. Its token times are *pieces*, in order: a
float for a token emitted on its own (a prefill chunk that closes its gap), or ``(log, start, stop)``
for tokens emitted in a cohort: ``log[start:stop]``.
"""

from __future__ import annotations

import heapq
from array import array
from typing import Protocol, Union

from serving.kv_blocks import blocks_for_tokens

Piece = Union[float, "tuple[array[float], int, int]"]  # an alias is evaluated at runtime: array[float] quoted


class GapSink(Protocol):
    """Where inter-token gaps go when they are counted, not kept per request."""

    def add(self, gap_s: float, count: int) -> None: ...


class LiveRequest:
    """A request from arrival to finish on one replica (owned by one ``FastReplica``)."""

    __slots__ = ("arrival_s", "cohort", "computed_tokens", "emitted_tokens", "finish_step", "first_scheduled_s",
                 "first_token_s", "held_blocks", "in_flight", "join_step", "last_token_s", "offset", "output_tokens",
                 "pieces", "preemptions", "prompt_tokens", "request_id", "seq")

    def __init__(self, request_id: int, arrival_s: float, prompt_tokens: int, output_tokens: int) -> None:
        self.request_id = request_id
        self.arrival_s = arrival_s
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.seq = -1  # admission order on the replica (the running list's order); -1 while waiting
        self.computed_tokens = 0
        self.emitted_tokens = 0
        self.held_blocks = 0
        self.in_flight = False  # outside a cohort (a cohort knows whether it is in flight)
        self.cohort: Cohort | None = None
        self.offset = 0  # in a cohort: computed_tokens - the cohort's steps
        self.join_step = 0  # the cohort's steps when it joined
        self.finish_step = 0  # the cohort's step at whose completion it emits its last token
        self.first_scheduled_s: float | None = None
        self.preemptions = 0
        self.pieces: list[Piece] = []
        self.first_token_s = -1.0
        self.last_token_s = -1.0  # its latest token outside its current cohort

    @property
    def known_tokens(self) -> int:
        """Prompt and emitted tokens (explicit state)."""
        return self.prompt_tokens + self.emitted_tokens

    @property
    def remaining_tokens(self) -> int:
        """Known tokens whose KV is not computed yet (explicit state)."""
        return self.prompt_tokens + self.emitted_tokens - self.computed_tokens

    def token_times_s(self) -> tuple[float, ...]:
        """Every token time, in order, from its pieces."""
        times: list[float] = []
        for piece in self.pieces:
            if isinstance(piece, tuple):
                log, start, stop = piece
                times.extend(log[start:stop])
            else:
                times.append(piece)
        return tuple(times)


class Cohort:
    """Decoders scheduled as one (see the module docstring). ``grows``: members take KV blocks as they
    decode (False under static batching, which reserved them at admission)."""

    __slots__ = ("block_size", "finishes", "fresh", "grows", "in_flight", "log", "members", "offset_sum",
                 "residues", "steps")

    def __init__(self, block_size: int, grows: bool) -> None:
        self.block_size = block_size
        self.grows = grows
        self.steps = 0
        self.members: set[LiveRequest] = set()
        self.residues = [0] * block_size if grows else []
        self.offset_sum = 0
        self.finishes: list[tuple[int, int, LiveRequest]] = []  # (finishing step, admission order, request)
        self.log: array[float] = array("d")  # log[k - 1]: when step k completed
        self.fresh: list[LiveRequest] = []  # members whose previous token is not this cohort's last step
        self.in_flight = False

    @property
    def size(self) -> int:
        return len(self.members)

    def blocks_needed(self) -> int:
        """KV blocks the next step takes (members whose computed tokens fill their last block)."""
        return self.residues[-self.steps % self.block_size] if self.grows else 0

    def join(self, request: LiveRequest, computed_tokens: int, emitted_tokens: int, fresh: bool) -> None:
        """``request`` (not in flight, its state given) decodes with this cohort from its next step on;
        ``fresh``: its previous token is not this cohort's latest step."""
        offset = computed_tokens - self.steps
        request.cohort = self
        request.offset = offset
        request.join_step = self.steps
        request.finish_step = self.steps + request.output_tokens - emitted_tokens
        self.members.add(request)
        if self.grows:
            self.residues[offset % self.block_size] += 1
        self.offset_sum += offset
        heapq.heappush(self.finishes, (request.finish_step, request.seq, request))
        if fresh:
            self.fresh.append(request)

    def step(self) -> int:
        """Schedule every member one decode; the sum of their contexts (computed tokens after the step)."""
        self.steps += 1
        self.in_flight = True
        return self.offset_sum + len(self.members) * self.steps

    def complete(self, end_s: float, gaps: GapSink | None) -> list[LiveRequest]:
        """The step in flight ended at ``end_s``: every member emitted a token. Returns the members that
        emitted their last one (in admission order), no longer members. ``gaps`` counts the inter-token
        gaps of this step."""
        self.in_flight = False
        if gaps is not None:
            steady = len(self.members) - len(self.fresh)
            if steady:
                gaps.add(end_s - self.log[-1], steady)
            for request in self.fresh:
                gaps.add(end_s - request.last_token_s, 1)
        self.fresh = []
        self.log.append(end_s)
        done: list[LiveRequest] = []
        finishes = self.finishes
        while finishes and finishes[0][0] == self.steps:
            done.append(heapq.heappop(finishes)[2])
        for request in done:
            self.release(request)
        return done

    def release(self, request: LiveRequest) -> None:
        """``request`` leaves (not in flight): its explicit state is restored from the cohort's."""
        computed = request.offset + self.steps
        self.members.remove(request)
        if self.grows:
            self.residues[request.offset % self.block_size] -= 1
            request.held_blocks = blocks_for_tokens(computed, self.block_size)
        self.offset_sum -= request.offset
        if self.steps > request.join_step:
            request.pieces.append((self.log, request.join_step, self.steps))
            request.last_token_s = self.log[self.steps - 1]
        request.computed_tokens = computed
        request.emitted_tokens = computed + 1 - request.prompt_tokens  # between steps, computed = known - 1
        request.cohort = None

    def release_all(self) -> list[LiveRequest]:
        """Every member leaves (the cohort is dissolved), in admission order."""
        members = sorted(self.members, key=_admission_order)
        for request in members:
            self.release(request)
        self.finishes = []
        return members

    def absorb(self, other: Cohort) -> None:
        """Take every member of ``other`` (not in flight, like this one) in: they decode with this cohort."""
        for request in other.release_all():
            self.join(request, request.computed_tokens, request.emitted_tokens, fresh=True)


def _admission_order(request: LiveRequest) -> int:
    return request.seq
