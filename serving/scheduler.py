"""The iteration scheduler: given the time and the requests present, the next iteration's batch.

One class, vLLM V1's shape (``vllm/v1/core/sched/scheduler.py``): ``schedule(now_s)`` returns a plain
``IterationPlan``; ``complete(plan, end_s)`` is told when the iteration ends and emits its tokens.
The policies are described in ``serving/scheduler_config.py``. Semantics kept from vLLM 0.11:

* ``computed_tokens`` advances when an iteration is scheduled; the tokens it samples exist when it
  completes. A request inside an iteration that has not completed is not scheduled again, so with a
  pipeline of depth d up to d plans may be outstanding, each with its own requests (vLLM keeps
  ``pipeline_parallel_size`` batches in flight); ``max_num_seqs`` counts running requests of all of them.
* Running requests come first, in admission order, each taking min(remaining, budget left) tokens
  (no decode-first reordering: an old request's long prefill chunk can starve newer decodes).
* When a running request needs a KV block and none is free, the newest running request loses all
  its blocks (preemption by recompute): its computed tokens drop to 0 and it goes to the head of the
  waiting queue, to re-prefill prompt + generated tokens when admitted again. If the newest is the
  request itself, the running pass stops. An iteration that preempted admits nobody. Unlike vLLM,
  a request inside an outstanding iteration is never the victim (its blocks are being read).
* Waiting requests are admitted first come first served; the first that does not fit (budget,
  ``max_num_seqs``, blocks) stops admission (head-of-line blocking).
* A request that can never run (prompt + output > ``max_model_len_tokens``, or KV for
  prompt + output − 1 tokens above the whole pool) is rejected at arrival, never queued.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from serving.batch import DECODE, PREFILL, IterationPlan, PlanItem, graph_padding
from serving.kv_blocks import KvBlockPool, blocks_for_tokens
from serving.requests import RequestRecord, RequestSpec, RequestState, RequestStatus
from serving.scheduler_config import SchedulerConfig
from topology.errors import LayerwiseError


class Scheduler:
    """One replica's scheduler: its waiting queue, running set, KV pool and outstanding plans.
    ``replica`` is only written into the records it returns."""

    def __init__(self, config: SchedulerConfig, replica: int = 0) -> None:
        self.config = config
        self.replica = replica
        self._pool = KvBlockPool(config.num_blocks, config.block_size_tokens)
        self._waiting: deque[RequestState] = deque()
        self._running: list[RequestState] = []  # admission order
        self._live: dict[int, RequestState] = {}  # waiting and running, by request id
        self._seen: set[int] = set()
        self._outstanding: dict[int, IterationPlan] = {}  # plans scheduled, not completed, by iteration
        self._next_iteration = 0
        self._now_s = 0.0

    # --- what a driver and a router read -------------------------------------------------------

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_in_system(self) -> int:
        """Requests waiting or running (what a least-outstanding router compares)."""
        return len(self._live)

    @property
    def kv_blocks_used(self) -> int:
        return self._pool.used_blocks

    @property
    def kv_usage_fraction(self) -> float:
        return self._pool.usage_fraction

    @property
    def plans_in_flight(self) -> int:
        return len(self._outstanding)

    # --- arrivals -------------------------------------------------------------------------------

    def rejection_reason(self, spec: RequestSpec) -> str:
        """Why ``spec`` can never run on this replica, or "" if it can."""
        config = self.config
        if spec.total_tokens > config.max_model_len_tokens:
            return (f"prompt + output = {spec.total_tokens} tokens exceeds max_model_len_tokens "
                    f"{config.max_model_len_tokens}")
        blocks = blocks_for_tokens(spec.max_kv_tokens, config.block_size_tokens)
        if blocks > config.num_blocks:
            return (f"its KV ({spec.max_kv_tokens} tokens) needs {blocks} blocks of {config.block_size_tokens} "
                    f"tokens; the pool has {config.num_blocks}")
        return ""

    def add_request(self, spec: RequestSpec) -> RequestRecord | None:
        """A request arrives: queued (None), or rejected at once (its record, never queued)."""
        if spec.request_id in self._seen:
            raise LayerwiseError("request_id", f"{spec.request_id} was already added to this scheduler")
        self._seen.add(spec.request_id)
        state = RequestState(spec)
        reason = self.rejection_reason(spec)
        if reason:
            state.status = RequestStatus.REJECTED
            return replace(state.record(self.replica), rejected_because=reason)
        self._waiting.append(state)
        self._live[spec.request_id] = state
        return None

    def add_prefilled(self, spec: RequestSpec, first_scheduled_s: float, first_token_s: float
                      ) -> RequestRecord | None:
        """A request whose prompt was prefilled elsewhere (a disaggregated prefill replica), its KV cache
        arriving with it: queued with its prompt computed and its first token emitted at
        ``first_token_s``. Admitted (FCFS, like any waiting request), it takes the blocks of its prompt
        and its next token, and decodes; preempted, it recomputes here. Rejected at once, like
        :meth:`add_request`, if it can never fit."""
        if spec.output_tokens < 2:
            raise LayerwiseError("request", f"{spec.request_id} has {spec.output_tokens} output token: a prefill "
                                 f"replica emits it, nothing is left to decode")
        rejected = self.add_request(spec)
        if rejected is not None:
            return rejected
        state = self._live[spec.request_id]
        state.computed_tokens = spec.prompt_tokens
        state.emitted_tokens = 1
        state.token_times_s.append(first_token_s)
        state.first_scheduled_s = first_scheduled_s
        return None

    # --- one iteration --------------------------------------------------------------------------

    def schedule(self, now_s: float) -> IterationPlan | None:
        """The next iteration at ``now_s``, or None if there is nothing to run now. May be called
        while other plans are outstanding (their requests are left out)."""
        self._advance_clock(now_s, "now_s")
        preempted: list[int] = []
        if self.config.policy == "static":
            items = self._schedule_static(now_s)
        else:
            items = self._schedule_continuous(now_s, preempted)
        if not items:
            return None
        decode_only = all(item.kind == DECODE for item in items)
        graph_size = graph_padding(len(items), decode_only, self.config.cuda_graph_sizes)
        num_tokens = sum(item.new_tokens for item in items)
        plan = IterationPlan(iteration=self._next_iteration, scheduled_s=now_s, items=tuple(items),
                             padded_tokens=num_tokens if graph_size is None else graph_size,
                             cuda_graph=graph_size is not None, preempted_ids=tuple(preempted))
        self._next_iteration += 1
        self._outstanding[plan.iteration] = plan
        return plan

    def complete(self, plan: IterationPlan, end_s: float) -> tuple[RequestRecord, ...]:
        """``plan`` ended at ``end_s``: each item that closes its request's gap emits one token at
        ``end_s``; requests with all their output tokens finish and free their blocks. Returns the
        records of the requests that finished."""
        if self._outstanding.get(plan.iteration) is not plan:
            raise LayerwiseError("plan", f"iteration {plan.iteration} is not outstanding on this scheduler")
        if end_s < plan.scheduled_s:
            raise LayerwiseError("end_s", f"{end_s!r} is before the plan was scheduled ({plan.scheduled_s!r})")
        self._advance_clock(end_s, "end_s")
        del self._outstanding[plan.iteration]
        finished: list[RequestRecord] = []
        for item in plan.items:
            state = self._live[item.request_id]
            state.in_flight = False
            if not item.emits_token:
                continue
            state.emitted_tokens += 1
            state.token_times_s.append(end_s)
            if state.emitted_tokens == state.spec.output_tokens:
                finished.append(self._finish(state, end_s))
        return tuple(finished)

    # --- policies -------------------------------------------------------------------------------

    def _schedule_continuous(self, now_s: float, preempted: list[int]) -> list[PlanItem]:
        """``vllm`` (chunked) and ``prefill-first`` (whole prompts): running first, then admissions."""
        budget = self.config.max_num_batched_tokens
        items: list[PlanItem] = []
        index = 0
        while index < len(self._running) and budget > 0:
            state = self._running[index]
            tokens = min(state.remaining_tokens, budget)
            if state.in_flight or tokens == 0:
                index += 1
                continue
            if not self._make_room(index, state.computed_tokens + tokens, preempted):
                break  # the request preempted itself: the running pass ends (vLLM)
            items.append(self._take(state, tokens, now_s))
            budget -= tokens
            index += 1
        if not preempted:
            self._admit(budget, items, now_s)
        return items

    def _make_room(self, index: int, tokens: int, preempted: list[int]) -> bool:
        """Grow ``running[index]`` to hold ``tokens`` tokens, preempting the newest running requests
        (not in flight) until it fits; False if it had to preempt itself."""
        state = self._running[index]
        while not self._pool.grow(state.request_id, tokens):
            victim = next((later for later in reversed(self._running[index + 1:]) if not later.in_flight), state)
            self._preempt(victim)
            preempted.append(victim.request_id)
            if victim is state:
                return False
        return True

    def _admit(self, budget: int, items: list[PlanItem], now_s: float) -> None:
        config = self.config
        while self._waiting and budget > 0 and len(self._running) < config.max_num_seqs:
            state = self._waiting[0]
            tokens = state.remaining_tokens
            if config.chunked_prefill:
                tokens = min(tokens, budget)
            elif tokens > budget:
                break  # no chunking: the whole prompt fits this iteration or the queue waits
            if config.reserve_full_prompt and self._pool.blocks_to_grow(
                    state.request_id, state.known_tokens) > self._pool.free_blocks:
                break
            if not self._pool.grow(state.request_id, state.computed_tokens + tokens):
                break
            self._waiting.popleft()
            state.status = RequestStatus.RUNNING
            self._running.append(state)
            items.append(self._take(state, tokens, now_s))
            budget -= tokens

    def _schedule_static(self, now_s: float) -> list[PlanItem]:
        """Admit a batch only when none runs (KV reserved at full length, so never preempted), then
        give every running request its remaining tokens: the whole prompt, then one token a step."""
        budget = self.config.max_num_batched_tokens
        if not self._running:
            while self._waiting and len(self._running) < self.config.max_num_seqs:
                state = self._waiting[0]
                if state.remaining_tokens > budget or not self._pool.grow(state.request_id, state.spec.max_kv_tokens):
                    break
                budget -= state.remaining_tokens
                self._waiting.popleft()
                state.status = RequestStatus.RUNNING
                self._running.append(state)
            budget = self.config.max_num_batched_tokens
        items: list[PlanItem] = []
        for state in self._running:
            tokens = state.remaining_tokens
            if state.in_flight or tokens == 0 or tokens > budget:
                continue
            items.append(self._take(state, tokens, now_s))
            budget -= tokens
        return items

    # --- one request ------------------------------------------------------------------------------

    def _take(self, state: RequestState, tokens: int, now_s: float) -> PlanItem:
        """Schedule ``tokens`` new tokens of ``state`` into the plan being made."""
        before = state.computed_tokens
        decode = tokens == 1 and state.emitted_tokens >= 1 and before + 1 == state.known_tokens
        state.computed_tokens = before + tokens
        state.in_flight = True
        if state.first_scheduled_s is None:
            state.first_scheduled_s = now_s
        return PlanItem(request_id=state.request_id, kind=DECODE if decode else PREFILL, new_tokens=tokens,
                        context_tokens=before + tokens, emits_token=state.computed_tokens == state.known_tokens)

    def _preempt(self, state: RequestState) -> None:
        self._pool.free(state.request_id)
        self._running.remove(state)
        state.status = RequestStatus.PREEMPTED
        state.computed_tokens = 0
        state.preemptions += 1
        self._waiting.appendleft(state)

    def _finish(self, state: RequestState, end_s: float) -> RequestRecord:
        state.status = RequestStatus.FINISHED
        state.finish_s = end_s
        self._pool.free(state.request_id)
        self._running.remove(state)
        del self._live[state.request_id]
        return state.record(self.replica)

    def _advance_clock(self, time_s: float, field: str) -> None:
        if time_s < self._now_s:
            raise LayerwiseError(field, f"{time_s!r} is before the scheduler's last time {self._now_s!r}")
        self._now_s = time_s
