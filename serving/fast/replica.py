"""One replica's scheduler on the fast path: the decisions of ``serving.scheduler.Scheduler``, step for
step, with decoding requests kept in cohorts (``serving/fast/state.py``) so that an iteration costs
O(requests that change), not O(requests running).

``schedule(now_s)`` first checks whether the running pass can give every request that is not in flight
all its remaining tokens: the token budget covers their sum, and the free KV blocks cover what they
need. Then no request is skipped and none is preempted, so the order of the running list does not
matter: every ready cohort takes one step (merged into one cohort, the new iteration's), every loose
request its remaining tokens, and admission runs as in the scheduler. Otherwise (a budget or a KV pool
that binds) the ready cohorts are dissolved and the scheduler's own running pass runs request by
request, in admission order, with its preemptions; the decodes it schedules form the new iteration's
cohort. Either way the iteration, its items, its blocks and every later timestamp are those of
``Scheduler``: ``tests/serving/test_serving_fast_equivalence.py`` runs both on random workloads.

A request with ``remaining == 1`` and a token already emitted decodes; it joins the cohort of the
iteration it was last in when that iteration completes (or the next iteration's when it is loose).
"""

from __future__ import annotations

from collections import deque

from serving.batch import DECODE, PREFILL, IterationPlan, PlanItem, graph_padding
from serving.fast.state import Cohort, GapSink, LiveRequest
from serving.kv_blocks import blocks_for_tokens
from serving.requests import RequestSpec
from serving.scheduler import Scheduler
from serving.scheduler_config import SchedulerConfig
from serving.shape import IterationShape

Item = tuple[LiveRequest, int, bool]  # a request outside the cohort, its new tokens, whether it emits


class Launched:
    """A scheduled iteration until it completes: its cohort of decodes, its other items (prefill
    chunks), its shape, and (``trace``) the ``IterationPlan`` the scheduler would have returned."""

    __slots__ = ("cohort", "items", "iteration", "plan", "preempted_ids", "scheduled_s", "shape")

    def __init__(self, iteration: int, scheduled_s: float, cohort: Cohort, items: list[Item],
                 shape: IterationShape, preempted_ids: tuple[int, ...], plan: IterationPlan | None) -> None:
        self.iteration = iteration
        self.scheduled_s = scheduled_s
        self.cohort = cohort
        self.items = items
        self.shape = shape
        self.preempted_ids = preempted_ids
        self.plan = plan


class FastReplica:
    """A replica's waiting queue, running requests (cohorts and loose ones) and KV block count.

    ``trace``: build each iteration's ``IterationPlan`` (what tests compare; O(requests) per iteration).
    ``gaps``: count every inter-token gap there (a summary run keeps no token times).
    """

    def __init__(self, config: SchedulerConfig, replica: int = 0, *, trace: bool = False,
                 gaps: GapSink | None = None) -> None:
        self.config = config
        self.replica = replica
        self._trace = trace
        self._gaps = gaps
        self._block_size = config.block_size_tokens
        self._grows = config.policy != "static"
        self._probe = Scheduler(config, replica)  # the scheduler's own rejection text
        self._waiting: deque[LiveRequest] = deque()
        self._loose: list[LiveRequest] = []  # running requests outside any cohort
        self._ready: list[Cohort] = []  # cohorts between steps
        self._next_seq = 0
        self._next_iteration = 0
        self.num_running = 0
        self.kv_blocks_used = 0
        self.preempted_without_plan = False  # the last schedule() preempted and returned None

    # --- what a driver and a router read --------------------------------------------------------

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def num_in_system(self) -> int:
        return len(self._waiting) + self.num_running

    # --- arrivals ---------------------------------------------------------------------------------

    def add(self, request: LiveRequest) -> str:
        """Queue an arriving request; or, if it can never run here, the scheduler's reason (not queued)."""
        config = self.config
        total = request.prompt_tokens + request.output_tokens
        if total > config.max_model_len_tokens or blocks_for_tokens(total - 1, self._block_size) > config.num_blocks:
            return self._probe.rejection_reason(RequestSpec(request.request_id, request.arrival_s,
                                                            request.prompt_tokens, request.output_tokens))
        self._waiting.append(request)
        return ""

    # --- one iteration ------------------------------------------------------------------------------

    def schedule(self, now_s: float) -> Launched | None:
        """The next iteration at ``now_s`` (``Scheduler.schedule``), or None."""
        self.preempted_without_plan = False
        ready = [request for request in self._loose if not request.in_flight]
        demand = sum(cohort.size for cohort in self._ready) + sum(r.remaining_tokens for r in ready)
        budget = self.config.max_num_batched_tokens
        if self._grows:
            if demand <= budget and self._blocks_for_all(ready) <= self.config.num_blocks - self.kv_blocks_used:
                return self._schedule_all(now_s, ready, budget - demand)
            return self._schedule_exact(now_s)
        if self.num_running == 0:
            self._admit_static()
            ready = list(self._loose)
            demand = sum(r.remaining_tokens for r in ready)
        if demand <= budget:
            return self._schedule_all(now_s, ready, 0)
        return self._schedule_exact(now_s)

    def complete(self, launched: Launched, end_s: float) -> list[LiveRequest]:
        """``launched`` ended at ``end_s`` (``Scheduler.complete``): the requests that finished, in
        the plan's order, their blocks freed."""
        cohort = launched.cohort
        done = cohort.complete(end_s, self._gaps)
        joined = False
        for request, _, emits in launched.items:
            request.in_flight = False
            if emits:
                request.emitted_tokens += 1
                request.pieces.append(end_s)
                if request.first_token_s < 0.0:
                    request.first_token_s = end_s
                elif self._gaps is not None:
                    self._gaps.add(end_s - request.last_token_s, 1)
                request.last_token_s = end_s
                if request.emitted_tokens == request.output_tokens:
                    done.append(request)
                    continue
                cohort.join(request, request.computed_tokens, request.emitted_tokens, fresh=False)
                joined = True
            elif request.emitted_tokens >= 1 and request.remaining_tokens == 1:
                cohort.join(request, request.computed_tokens, request.emitted_tokens, fresh=True)
                joined = True
        if done:
            if len(done) > 1:
                done.sort(key=_admission_order)
            for request in done:
                self.kv_blocks_used -= request.held_blocks
                request.seq = -1  # out of the running list
            self.num_running -= len(done)
        if joined or done:
            self._loose = [r for r in self._loose if r.cohort is None and r.seq >= 0]
        if cohort.size:
            self._ready.append(cohort)
        return done

    # --- the running pass when nothing binds -------------------------------------------------------

    def _blocks_for_all(self, ready: list[LiveRequest]) -> int:
        """KV blocks the ready requests need to take all their remaining tokens."""
        need = sum(cohort.blocks_needed() for cohort in self._ready)
        for request in ready:
            need += max(0, blocks_for_tokens(request.prompt_tokens + request.emitted_tokens, self._block_size)
                        - request.held_blocks)
        return need

    def _merged_ready(self) -> Cohort:
        """The ready cohorts as one (the largest absorbs the others), or a new empty cohort."""
        ready, self._ready = self._ready, []
        if not ready:
            return Cohort(self._block_size, self._grows)
        largest = max(ready, key=_cohort_size)
        for other in ready:
            if other is not largest:
                largest.absorb(other)
        return largest

    def _schedule_all(self, now_s: float, ready: list[LiveRequest], budget: int) -> Launched | None:
        """Every ready request takes all its remaining tokens; then admissions with what is left."""
        cohort = self._merged_ready()
        items: list[Item] = []
        chunks: list[LiveRequest] = []
        if ready:
            ready.sort(key=_admission_order)
            for request in ready:
                if request.remaining_tokens == 1 and request.emitted_tokens >= 1:  # a decode
                    cohort.join(request, request.computed_tokens, request.emitted_tokens, fresh=True)
                else:
                    chunks.append(request)
            if len(chunks) < len(ready):
                self._loose = [r for r in self._loose if r.cohort is None]
        self.kv_blocks_used += cohort.blocks_needed()
        decode_context = cohort.step()
        for request in chunks:
            tokens = request.remaining_tokens
            self._grow(request, request.computed_tokens + tokens)
            self._take(request, tokens, now_s, items)
        if self._grows:
            self._admit(now_s, budget, items)
        return self._launch(now_s, cohort, decode_context, items, ())

    # --- the running pass request by request (Scheduler._schedule_continuous / _schedule_static) ----

    def _schedule_exact(self, now_s: float) -> Launched | None:
        for cohort in self._ready:
            self._loose.extend(cohort.release_all())
        self._ready = []
        ready = sorted((r for r in self._loose if not r.in_flight), key=_admission_order)
        budget = self.config.max_num_batched_tokens
        preempted: list[int] = []
        decodes: list[LiveRequest] = []
        items: list[Item] = []
        index = 0
        while index < len(ready) and budget > 0:
            request = ready[index]
            tokens = min(request.remaining_tokens, budget)
            if not self._grows and tokens < request.remaining_tokens:
                index += 1  # static: a request whose remaining tokens do not fit is skipped
                continue
            if not self._make_room(ready, index, request.computed_tokens + tokens, preempted):
                break  # it preempted itself: the running pass ends
            if tokens == 1 and request.emitted_tokens >= 1 and request.remaining_tokens == 1:  # a decode
                decodes.append(request)
                if request.first_scheduled_s is None:
                    request.first_scheduled_s = now_s
            else:
                self._take(request, tokens, now_s, items)
            budget -= tokens
            index += 1
        if self._grows and not preempted:
            self._admit(now_s, budget, items)
        cohort = Cohort(self._block_size, self._grows)
        for request in decodes:
            cohort.join(request, request.computed_tokens, request.emitted_tokens, fresh=True)
        decode_context = cohort.step()
        self._loose = [r for r in self._loose if r.cohort is None and r.seq >= 0]
        launched = self._launch(now_s, cohort, decode_context, items, tuple(preempted))
        self.preempted_without_plan = launched is None and bool(preempted)
        return launched

    def _make_room(self, ready: list[LiveRequest], index: int, tokens: int, preempted: list[int]) -> bool:
        """Grow ``ready[index]`` to ``tokens`` tokens of KV, preempting the newest ready requests after
        it until it fits; False if it had to preempt itself (``Scheduler._make_room``)."""
        request = ready[index]
        while not self._grow(request, tokens):
            victim = ready.pop() if len(ready) > index + 1 else request
            self._preempt(victim)
            preempted.append(victim.request_id)
            if victim is request:
                return False
        return True

    # --- admissions ---------------------------------------------------------------------------------

    def _admit(self, now_s: float, budget: int, items: list[Item]) -> None:
        """``Scheduler._admit``: waiting requests first come first served while they fit."""
        config = self.config
        waiting = self._waiting
        while waiting and budget > 0 and self.num_running < config.max_num_seqs:
            request = waiting[0]
            tokens = request.remaining_tokens
            if config.chunked_prefill:
                tokens = min(tokens, budget)
            elif tokens > budget:
                break
            if config.reserve_full_prompt and blocks_for_tokens(
                    request.known_tokens, self._block_size) > config.num_blocks - self.kv_blocks_used:
                break
            if not self._grow(request, tokens):
                break
            self._start(waiting.popleft())
            self._take(request, tokens, now_s, items)
            budget -= tokens

    def _admit_static(self) -> None:
        """``Scheduler._schedule_static``'s admission: a batch whose prompts fit the budget together and
        whose KV fits at full length."""
        budget = self.config.max_num_batched_tokens
        waiting = self._waiting
        while waiting and self.num_running < self.config.max_num_seqs:
            request = waiting[0]
            if request.remaining_tokens > budget or not self._grow(
                    request, request.prompt_tokens + request.output_tokens - 1):
                break
            budget -= request.remaining_tokens
            self._start(waiting.popleft())

    def _start(self, request: LiveRequest) -> None:
        request.seq = self._next_seq
        self._next_seq += 1
        self.num_running += 1
        self._loose.append(request)

    # --- one request ----------------------------------------------------------------------------------

    def _grow(self, request: LiveRequest, tokens: int) -> bool:
        """``KvBlockPool.grow`` for a request outside a cohort."""
        needed = blocks_for_tokens(tokens, self._block_size) - request.held_blocks
        if needed <= 0:
            return True
        if needed > self.config.num_blocks - self.kv_blocks_used:
            return False
        request.held_blocks += needed
        self.kv_blocks_used += needed
        return True

    def _take(self, request: LiveRequest, tokens: int, now_s: float, items: list[Item]) -> None:
        """Schedule ``tokens`` new tokens of a request outside the cohort (a prefill chunk)."""
        request.computed_tokens += tokens
        request.in_flight = True
        if request.first_scheduled_s is None:
            request.first_scheduled_s = now_s
        items.append((request, tokens, request.computed_tokens == request.prompt_tokens + request.emitted_tokens))

    def _preempt(self, request: LiveRequest) -> None:
        self.kv_blocks_used -= request.held_blocks
        request.held_blocks = 0
        request.computed_tokens = 0
        request.preemptions += 1
        request.seq = -1
        self.num_running -= 1
        self._waiting.appendleft(request)

    # --- the launched iteration ------------------------------------------------------------------------

    def _launch(self, now_s: float, cohort: Cohort, decode_context: int, items: list[Item],
                preempted: tuple[int, ...]) -> Launched | None:
        decodes = cohort.size
        if not decodes and not items:
            return None
        num_tokens = decodes + sum(tokens for _, tokens, _ in items)
        graph = graph_padding(decodes + len(items), not items, self.config.cuda_graph_sizes)
        shape = IterationShape(num_tokens, num_tokens if graph is None else graph, graph is not None, decodes,
                               decode_context, tuple((tokens, request.computed_tokens) for request, tokens, _ in items))
        iteration = self._next_iteration
        self._next_iteration += 1
        plan = self._plan(iteration, now_s, cohort, items, shape, preempted) if self._trace else None
        return Launched(iteration, now_s, cohort, items, shape, preempted, plan)

    def _plan(self, iteration: int, now_s: float, cohort: Cohort, items: list[Item], shape: IterationShape,
              preempted: tuple[int, ...]) -> IterationPlan:
        """The ``IterationPlan`` ``Scheduler.schedule`` returns for this iteration (items in running order)."""
        rows = [(r.seq, PlanItem(r.request_id, DECODE, 1, r.offset + cohort.steps, True)) for r in cohort.members]
        rows += [(r.seq, PlanItem(r.request_id, PREFILL, tokens, r.computed_tokens, emits))
                 for r, tokens, emits in items]
        rows.sort(key=_first)
        return IterationPlan(iteration=iteration, scheduled_s=now_s, items=tuple(item for _, item in rows),
                             padded_tokens=shape.padded_tokens, cuda_graph=shape.cuda_graph, preempted_ids=preempted)


def _admission_order(request: LiveRequest) -> int:
    return request.seq


def _cohort_size(cohort: Cohort) -> int:
    return cohort.size


def _first(row: tuple[int, PlanItem]) -> int:
    return row[0]
