"""Rank 0's serving loop: requests arrive in wall-clock time, the one scheduler
(``serving.scheduler.Scheduler``) makes every iteration, and the iterations run for real.

It is ``serving.driver`` with the clock replaced by measurements, so that a replay of its record
reproduces every batch (``serving.replay``). Its events are the driver's, handled in the driver's
order (at one instant: iterations that end, then arrivals, then scheduling while fewer than d
iterations are in flight and the first stage is free), but only up to *now*: the latest stamp
of the run's clock (``RunClock``), taken after the observations that produce events:

* a one-stage plan runs an iteration from start to sampled tokens on the host, then stamps; the
  iteration ends then, and its duration is that stamp minus its start;
* a pipeline's first stage stamps when its forward is done (the stage is free again), and the
  iteration ends when rank 0 has its sampled tokens back; the middle stages' ticks come with them.
  Each stage's time is its end minus the later of its start and the stage's previous end.

Logical times are computed with the driver's own arithmetic (``serving.driver.advance_stages``,
from dyadic stamps), so they are the replay's to the last bit. An iteration that starts at an
arrival or an end instant starts there even if the host gets to it a little later: the delay is
part of its duration, as it is part of the request's latency.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from executor.serving.clock import RunClock, ticks_to_s
from executor.serving.messages import CLOCK, HEARTBEAT, PLAN, STOP, MessageItem, PlanMessage, plan_message
from executor.serving.runner import RankServing
from serving.batch import IterationPlan
from serving.driver import IterationRecord, ServingRun, advance_stages
from serving.occupancy import StateSample
from serving.requests import RequestRecord, RequestSpec
from serving.scheduler import Scheduler
from serving.scheduler_config import SchedulerConfig
from serving.sources import RequestSource

_COMPLETE, _ARRIVE, _STAGE_FREE = 0, 1, 2  # the driver's order of events at one instant
POLL_S = 2e-4  # a pipeline's wait for tokens: how often rank 0 looks
WARMUP_BASE_ID = 1 << 40  # warm-up requests' ids, far above any workload's


@dataclass
class Flight:
    """An iteration between its start and its end."""

    plan: IterationPlan
    message: PlanMessage
    index: int  # its place in launch order
    start_s: float
    stage_times_s: list[float]
    first_stage_free_s: float
    snapshot: tuple[int, int, int]  # waiting, running, KV blocks used, right after scheduling
    host_s: float = 0.0


@dataclass
class EngineStats:
    """What the run's environment reports about rank 0's own work, per iteration (seconds)."""

    host_s: list[float] = field(default_factory=list)  # wall time of a launch outside its forward
    forward_s: list[float] = field(default_factory=list)
    graph: list[bool] = field(default_factory=list)
    num_seqs: list[int] = field(default_factory=list)
    warmup_s: float = 0.0


class Engine:
    """Serve ``source`` with ``config`` through ``rank`` (rank 0) in a pipeline of ``depth`` stages."""

    def __init__(self, rank: RankServing, config: SchedulerConfig, source: RequestSource, clock: RunClock,
                 heartbeat_s: float = 5.0, deadline_s: float | None = None) -> None:
        self.rank, self.config, self.source, self.clock = rank, config, source, clock
        self.depth = rank.num_stages
        self.heartbeat_s, self.deadline_s = heartbeat_s, deadline_s
        self.scheduler = Scheduler(config)
        self.events: list[tuple[float, int, int, Any]] = []
        self.order = itertools.count()
        self.stage_free_s = [0.0] * self.depth
        self.flights: deque[Flight] = deque()
        self.in_flight = 0
        self.iterations: list[IterationRecord | None] = []
        self.records: list[RequestRecord] = []
        self.samples: list[StateSample] = []
        self.last_state: tuple[int, int, int] | None = None
        self.prompts: dict[int, int] = {}
        self.finished_ids: list[int] = []
        self.generated: dict[int, list[int]] = {}
        self.stats = EngineStats()
        self.last_message_s = 0.0

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> ServingRun:
        """Serve every request; the run's clock starts now (and on every rank)."""
        self.send_control(CLOCK, self.clock.restart())
        for spec in self.source.initial_requests():
            self.arrive(spec, 0.0)
        while True:
            now = self.clock.stamp()
            if self.deadline_s is not None and now > self.deadline_s:
                raise RuntimeError(f"the serving run passed its deadline of {self.deadline_s:g} s "
                                   f"({self.scheduler.num_in_system} requests still in the system)")
            self.observe(now)
            self.process_until(now)
            if not self.events and not self.in_flight:
                break
            self.idle()
        self.send_control(STOP)
        stuck = self.scheduler.num_in_system
        if stuck:
            raise RuntimeError(f"the serving loop ended with {stuck} requests still in the system")
        iterations = tuple(it for it in self.iterations if it is not None)
        return ServingRun(records=tuple(sorted(self.records, key=lambda r: r.request_id)), iterations=iterations,
                          samples=tuple(self.samples), replicas=1, pipeline_depth=self.depth)

    def process_until(self, now: float) -> None:
        """Every event at or before ``now``, instant by instant, as the driver handles them."""
        while self.events and self.events[0][0] <= now:
            instant = self.events[0][0]
            while self.events and self.events[0][0] == instant:
                _, kind, _, payload = heapq.heappop(self.events)
                self.handle(instant, kind, payload)
            self.launch(instant)
            self.sample(instant)

    def idle(self) -> None:
        """Nothing to do before the next event: sleep until it (a pipeline: look for tokens often)."""
        next_s = self.events[0][0] if self.events else float("inf")
        longest_s = POLL_S if self.flights else self.heartbeat_s
        self.clock.sleep_until(next_s, longest_s)
        if self.clock.elapsed_s() - self.last_message_s > self.heartbeat_s:
            self.send_control(HEARTBEAT)

    def push(self, time_s: float, kind: int, payload: Any) -> None:
        heapq.heappush(self.events, (time_s, kind, next(self.order), payload))

    # --- events -----------------------------------------------------------------------------------

    def arrive(self, spec: RequestSpec, now_s: float) -> None:
        if spec.arrival_s < now_s:
            raise RuntimeError(f"request {spec.request_id} arrives at {spec.arrival_s!r} s, before {now_s!r} s")
        self.push(spec.arrival_s, _ARRIVE, spec)

    def done(self, record: RequestRecord, now_s: float) -> None:
        self.records.append(record)
        following = self.source.after_done(record.request_id, now_s)
        if following is not None:
            self.arrive(following, now_s)

    def handle(self, now_s: float, kind: int, payload: Any) -> None:
        if kind == _COMPLETE:
            self.in_flight -= 1
            for record in self.scheduler.complete(payload.plan, now_s):
                self.finished_ids.append(record.request_id)
                self.done(record, now_s)
        elif kind == _ARRIVE:
            self.prompts[payload.request_id] = payload.prompt_tokens
            rejected = self.scheduler.add_request(payload)
            if rejected is not None:
                self.done(rejected, now_s)

    def launch(self, now_s: float) -> None:
        """Start iterations while fewer than d are in flight and the first stage is free (the driver's rule)."""
        while self.in_flight < self.depth and self.stage_free_s[0] <= now_s:
            begin_s = time.perf_counter()
            plan = self.scheduler.schedule(now_s)
            if plan is None:
                return
            self.start(plan, now_s, begin_s)
        if self.in_flight < self.depth and self.stage_free_s[0] > now_s:
            self.push(self.stage_free_s[0], _STAGE_FREE, None)

    def start(self, plan: IterationPlan, start_s: float, begin_s: float) -> None:
        """Run the first stage of ``plan`` (a one-stage plan: all of it) and account for its times."""
        scheduler = self.scheduler
        snapshot = (scheduler.num_waiting, scheduler.num_running, scheduler.kv_blocks_used)
        graph = plan.cuda_graph and self.rank.graph_ready(plan.padded_tokens)
        taken = self.rank.inbox.taken if self.rank.inbox is not None else 0
        message = plan_message(plan, self.prompts, tuple(self.finished_ids), taken, graph)
        self.finished_ids.clear()
        executed = self.rank.execute(message)
        stamp_s = self.clock.stamp()
        self.last_message_s = self.clock.elapsed_s()
        host_s = time.perf_counter() - begin_s - executed.forward_s
        self.stats.host_s.append(host_s)
        self.stats.forward_s.append(executed.forward_s)
        self.stats.graph.append(executed.graph)
        self.stats.num_seqs.append(plan.num_seqs)
        first_s = stamp_s - start_s  # > 0: stamps increase, start_s <= an earlier stamp
        flight = Flight(plan, message, len(self.iterations), start_s, [first_s], 0.0, snapshot, host_s)
        self.iterations.append(None)
        self.in_flight += 1
        if self.depth == 1:
            assert executed.tokens is not None
            self.keep_tokens(message, executed.tokens)
            end_s = advance_stages(self.stage_free_s, start_s, (first_s,))  # the driver's: max(start, free) + d
            self.finish(flight, end_s, ())
        else:
            flight.first_stage_free_s = advance_stages(self.stage_free_s, start_s, (first_s,))
            self.flights.append(flight)

    def observe(self, now_s: float) -> None:
        """A pipeline: every token message already here ends its iteration at ``now_s``."""
        inbox = self.rank.inbox
        while inbox is not None and self.flights and inbox.head_ready():
            message, tokens, ticks = self.rank.take_token_message()
            flight = self.flights.popleft()
            if message.iteration != flight.plan.iteration:
                raise RuntimeError(f"tokens of iteration {message.iteration} came back for {flight.plan.iteration}")
            self.keep_tokens(message, tokens)
            ready_s = flight.first_stage_free_s
            for stage, tick in enumerate(ticks, start=1):  # middle stages: their own end stamps
                stage_s = max(ticks_to_s(tick) - max(ready_s, self.stage_free_s[stage]), 0.0)
                ready_s = advance_stages(self.stage_free_s, ready_s, (stage_s,), first_stage=stage)
                flight.stage_times_s.append(stage_s)
            last = self.depth - 1
            last_s = max(now_s - max(ready_s, self.stage_free_s[last]), 0.0)
            end_s = advance_stages(self.stage_free_s, ready_s, (last_s,), first_stage=last)
            flight.stage_times_s.append(last_s)
            self.finish(flight, end_s, tuple(flight.stage_times_s))

    def finish(self, flight: Flight, end_s: float, stage_times_s: tuple[float, ...]) -> None:
        """Record the iteration (as the driver would have) and queue its end."""
        waiting, running, used = flight.snapshot
        duration_s = sum(stage_times_s) if stage_times_s else flight.stage_times_s[0]
        self.iterations[flight.index] = IterationRecord(
            replica=0, plan=flight.plan, start_s=flight.start_s, end_s=end_s, duration_s=duration_s,
            num_waiting=waiting, num_running=running, kv_blocks_used=used, stage_times_s=stage_times_s)
        self.push(end_s, _COMPLETE, flight)

    def keep_tokens(self, message: PlanMessage, tokens: tuple[int, ...]) -> None:
        for item, token in zip(message.emitting, tokens, strict=True):
            self.generated.setdefault(item.request_id, []).append(token)

    def sample(self, now_s: float) -> None:
        scheduler = self.scheduler
        state = (scheduler.num_waiting, scheduler.num_running, scheduler.kv_blocks_used)
        if state == self.last_state:
            return
        self.last_state = state
        self.samples.append(StateSample(time_s=now_s, num_waiting=state[0], num_running=state[1],
                                        kv_blocks_used=state[2], kv_blocks_total=self.config.num_blocks))

    def send_control(self, kind: int, value: int = -1) -> None:
        """A heartbeat (rank 0 is idle: the others' receives must not time out), the clock's origin,
        or the stop, to every rank (each passes it down the pipeline)."""
        links = self.rank.links
        destinations = links.plan_peers + (() if links.layout.is_last_stage else links.layout.send_to)
        if destinations:
            self.rank.outbox.send_message(PlanMessage(kind, iteration=value), destinations, links.ctrl)
        if kind == STOP:
            self.rank.outbox.flush()
        self.last_message_s = self.clock.elapsed_s()

    # --- warm-up ----------------------------------------------------------------------------------

    def warm_up(self, prompt_tokens: int) -> None:
        """Two requests through a prefill and a few decodes on every rank before the clock matters
        (kernels loaded, allocator primed); their KV is dropped with the first real plan."""
        begin_s = time.perf_counter()
        ids = (WARMUP_BASE_ID, WARMUP_BASE_ID + 1)
        lengths = (prompt_tokens, max(1, prompt_tokens // 8))
        for rid, n in zip(ids, lengths, strict=True):  # one prompt per iteration: never past the budget
            item = MessageItem(rid, False, n, n, True, n)
            self._warm_step(PlanMessage(PLAN, -1, self._taken(), n, False, (item,)))
        for step in range(3):
            decodes = tuple(MessageItem(rid, True, 1, n + step + 1, True, n) for rid, n in zip(ids, lengths,
                                                                                                strict=True))
            self._warm_step(PlanMessage(PLAN, -2 - step, self._taken(), len(decodes), False, decodes))
        self.finished_ids.extend(ids)
        self.stats.warmup_s = time.perf_counter() - begin_s

    def _taken(self) -> int:
        return self.rank.inbox.taken if self.rank.inbox is not None else 0

    def _warm_step(self, message: PlanMessage) -> None:
        self.rank.execute(message)
        if self.rank.inbox is not None:
            self.rank.take_token_message()
