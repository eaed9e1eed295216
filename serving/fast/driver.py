"""The fast event driver: ``serving.driver.run_serving``'s run, event for event, on fast replicas.

It keeps the reference driver's order at every instant (iterations that end, then arrivals: those
known at the start in arrival order, then those issued during the run in issue order; then every
replica that may start an iteration, by index; then a state sample) and its pipeline arithmetic, so
each iteration starts and ends at the same float time. What it does not do is the work that cannot
change an outcome:

* arrivals known at the start are read from columns in order, not pushed into the event heap;
* at an instant, only replicas something happened to are offered an iteration (an iteration ended,
  a request arrived, the first stage came free), plus any replica whose last offer preempted
  requests without scheduling (the reference offers every replica at every instant; a replica whose
  state did not change declines again, so only those two kinds can act);
* a replica's "first stage free" wake-up is pushed once, not at every instant;
* running totals replace the sums over replicas at every sample.

The run's outcome goes to a recorder (``serving/fast/recorders.py``): records and samples as the
reference keeps them, or a summary.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from serving.fast.replica import FastReplica, Launched
from serving.fast.state import GapSink, LiveRequest
from serving.fields import positive_int
from serving.requests import RequestSpec
from serving.routing import Router
from serving.scheduler_config import SchedulerConfig
from serving.shape import IterationShape
from serving.sources import OpenLoopColumns, RequestSource
from topology.errors import LayerwiseError

ShapeTime = Callable[[IterationShape], float]
Progress = Callable[[float, int], None]  # (the time an iteration starts, iterations started so far)
PROGRESS_EVERY = 2048  # iterations between progress calls
_COMPLETE, _ARRIVE, _STAGE_FREE = 0, 1, 2  # order of events at one instant (serving.driver)
_CHUNK = 1 << 16  # arrivals read from columns this many at a time


class Recorder(Protocol):
    """Where a fast run's outcome goes (``serving/fast/recorders.py``)."""

    @property
    def gaps(self) -> GapSink | None:
        """Where the replicas count inter-token gaps (None: not counted)."""

    @property
    def trace(self) -> bool:
        """Whether the replicas build every iteration's plan."""

    def finished(self, request: LiveRequest, finish_s: float, replica: int) -> None: ...

    def rejected(self, request: LiveRequest, reason: str, replica: int) -> None: ...

    def iteration(self, replica: FastReplica, launched: Launched, start_s: float, end_s: float,
                  duration_s: float) -> None: ...

    def sample(self, time_s: float, num_waiting: int, num_running: int, kv_blocks_used: int) -> None: ...


class _Slot:
    """One replica and its pipeline: when each stage is next free, iterations in flight."""

    def __init__(self, replica: FastReplica, depth: int) -> None:
        self.replica = replica
        self.stage_free_s = [0.0] * depth
        self.in_flight = 0
        self.wake_s = -1.0  # a pending first-stage-free event's time (-1: none)
        self.counts = (0, 0, 0)  # waiting, running, KV blocks in use, as last added to the totals

    def push(self, start_s: float, duration_s: float) -> float:
        """``serving.driver.ReplicaState.push``: through the stages from ``start_s``; when it leaves the last."""
        stage_s = duration_s / len(self.stage_free_s)
        ready_s = start_s
        for stage, free_s in enumerate(self.stage_free_s):
            ready_s = max(ready_s, free_s) + stage_s
            self.stage_free_s[stage] = ready_s
        return ready_s


def initial_arrivals(source: RequestSource) -> Iterator[tuple[int, float, int, int]]:
    """(request id, arrival, prompt, output) of the requests known at the start, in the order the
    reference driver's event heap gives them (arrival time, then the source's order)."""
    if isinstance(source, OpenLoopColumns):
        columns = source
        for start in range(0, len(columns), _CHUNK):
            stop = start + _CHUNK
            yield from zip(range(start, min(stop, len(columns))), columns.arrival_s[start:stop].tolist(),
                           columns.prompt_tokens[start:stop].tolist(), columns.output_tokens[start:stop].tolist(),
                           strict=True)
        return
    specs = sorted(source.initial_requests(), key=_arrival)  # stable: the source's order among ties
    for spec in specs:
        yield spec.request_id, spec.arrival_s, spec.prompt_tokens, spec.output_tokens


def _arrival(spec: RequestSpec) -> float:
    return spec.arrival_s


class FastRun:
    """The state of one fast run (see the module docstring)."""

    def __init__(self, source: RequestSource, config: SchedulerConfig, shape_time_s: ShapeTime, depth: int,
                 replicas: int, router: str, recorder: Recorder, progress: Progress | None = None) -> None:
        self.source = source
        self.progress = progress
        self.started = 0
        self.shape_time_s = shape_time_s
        self.depth = positive_int("pipeline_depth", depth)
        count = positive_int("replicas", replicas)
        self.recorder = recorder
        self.slots = [_Slot(FastReplica(config, index, trace=recorder.trace, gaps=recorder.gaps), self.depth)
                      for index in range(count)]
        self.replicas = [slot.replica for slot in self.slots]
        self.router = Router(router)
        self.events: list[tuple[float, int, int, Any]] = []
        self.order = itertools.count()
        self.flagged: list[int] = []
        self.is_flagged = bytearray(count)
        self.retry: list[int] = []
        self.totals = [0, 0, 0]
        self.last_state: tuple[int, int, int] | None = None

    def flag(self, index: int) -> None:
        if not self.is_flagged[index]:
            self.is_flagged[index] = 1
            self.flagged.append(index)

    def arrive(self, request_id: int, arrival_s: float, prompt_tokens: int, output_tokens: int,
               now_s: float) -> None:
        index = self.router.pick(self.replicas) if len(self.replicas) > 1 else 0
        request = LiveRequest(request_id, arrival_s, prompt_tokens, output_tokens)
        reason = self.replicas[index].add(request)
        self.flag(index)
        if reason:
            self.recorder.rejected(request, reason, index)
            self.issue_after(request_id, now_s)

    def issue_after(self, request_id: int, now_s: float) -> None:
        """A request left the system: a closed loop may issue the next one."""
        following = self.source.after_done(request_id, now_s)
        if following is None:
            return
        if following.arrival_s < now_s:
            raise LayerwiseError("source", f"request {following.request_id} arrives at {following.arrival_s!r} s, "
                                 f"before the driver's time {now_s!r} s")
        heapq.heappush(self.events, (following.arrival_s, _ARRIVE, next(self.order), following))

    def complete(self, index: int, launched: Launched, now_s: float) -> None:
        slot = self.slots[index]
        slot.in_flight -= 1
        self.flag(index)
        for request in slot.replica.complete(launched, now_s):
            self.recorder.finished(request, now_s, index)
            self.issue_after(request.request_id, now_s)

    def launch(self, index: int, now_s: float) -> None:
        """``serving.driver._Run.launch``: iterations while the first stage is free and the queue not full."""
        slot = self.slots[index]
        replica = slot.replica
        while slot.in_flight < self.depth and slot.stage_free_s[0] <= now_s:
            launched = replica.schedule(now_s)
            if launched is None:
                if replica.preempted_without_plan:
                    self.retry.append(index)  # its state changed: offered again at the next instant
                return
            duration_s = self.shape_time_s(launched.shape)
            if not isinstance(duration_s, (int, float)) or not math.isfinite(duration_s) or duration_s <= 0:
                raise LayerwiseError("iteration_time_s", f"returned {duration_s!r} for iteration "
                                     f"{launched.iteration}; must be a finite time > 0 s")
            end_s = slot.push(now_s, float(duration_s))
            slot.in_flight += 1
            heapq.heappush(self.events, (end_s, _COMPLETE, next(self.order), (index, launched)))
            self.recorder.iteration(replica, launched, now_s, end_s, float(duration_s))
            self.started += 1
            if self.progress is not None and self.started % PROGRESS_EVERY == 0:
                self.progress(now_s, self.started)
        first_free_s = slot.stage_free_s[0]
        if slot.in_flight < self.depth and first_free_s > now_s and slot.wake_s != first_free_s:
            slot.wake_s = first_free_s
            heapq.heappush(self.events, (first_free_s, _STAGE_FREE, next(self.order), index))

    def settle(self, now_s: float) -> None:
        """Offer iterations to the replicas flagged at this instant, by index; then sample the totals."""
        for index in self.retry:
            self.flag(index)
        self.retry = []
        flagged = sorted(self.flagged)
        for index in flagged:
            self.launch(index, now_s)
        totals = self.totals
        for index in flagged:
            self.is_flagged[index] = 0
            slot = self.slots[index]
            replica = slot.replica
            counts = (replica.num_waiting, replica.num_running, replica.kv_blocks_used)
            before = slot.counts
            totals[0] += counts[0] - before[0]
            totals[1] += counts[1] - before[1]
            totals[2] += counts[2] - before[2]
            slot.counts = counts
        self.flagged = []
        state = (totals[0], totals[1], totals[2])
        if state != self.last_state:
            self.last_state = state
            self.recorder.sample(now_s, *state)

    def run(self) -> None:
        events = self.events
        arrivals = initial_arrivals(self.source)
        upcoming = next(arrivals, None)
        while events or upcoming is not None:
            now_s = events[0][0] if events else math.inf
            if upcoming is not None and upcoming[1] < now_s:
                now_s = upcoming[1]
            while events and events[0][0] == now_s and events[0][1] == _COMPLETE:
                _, _, _, (index, launched) = heapq.heappop(events)
                self.complete(index, launched, now_s)
            while upcoming is not None and upcoming[1] == now_s:
                request_id, arrival_s, prompt_tokens, output_tokens = upcoming
                if arrival_s < 0.0:
                    raise LayerwiseError("source", f"request {request_id} arrives at {arrival_s!r} s, before "
                                         f"the driver's time 0.0 s")
                self.arrive(request_id, arrival_s, prompt_tokens, output_tokens, now_s)
                upcoming = next(arrivals, None)
            while events and events[0][0] == now_s:
                _, kind, _, payload = heapq.heappop(events)
                if kind == _ARRIVE:
                    self.arrive(payload.request_id, payload.arrival_s, payload.prompt_tokens, payload.output_tokens,
                                now_s)
                else:
                    if self.slots[payload].wake_s == now_s:
                        self.slots[payload].wake_s = -1.0
                    self.flag(payload)
            self.settle(now_s)
        stuck = sum(replica.num_in_system for replica in self.replicas)
        if stuck:
            raise RuntimeError(f"the driver ran out of events with {stuck} requests still in the system")
