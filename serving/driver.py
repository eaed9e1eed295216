"""A small discrete-event driver (no SimPy): requests from a source, one scheduler per replica,
iterations that take ``iteration_time_s(plan)`` seconds.

Each replica is a pipeline of ``pipeline_depth`` stages, stage-uniform: an iteration of duration T
spends T/d in each stage, enters the first stage as soon as the previous iteration left it (back to
back) and at most d iterations are in flight (vLLM's batch queue). Its tokens exist when it leaves
the last stage; an iteration that reaches a stage still busy waits there. With d = 1 an iteration
starts when the previous one ends. ``iteration_time_s`` may instead give each stage's own time (a
tuple of d seconds, as a measured run records them): the same pipeline, stages no longer uniform.

At one instant the driver handles, in order: iterations that end (tokens, finished requests, a
closed loop's next requests), arrivals (routed to a replica; rejected at once if they can never
fit), then scheduling on every replica that can start an iteration. The simulator gives
``iteration_time_s`` from its cost model; a replay of an executor run gives the measured durations.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serving.batch import IterationPlan
from serving.fields import positive_int
from serving.iteration_log import IterationLog
from serving.occupancy import StateSample
from serving.requests import RequestRecord, RequestSpec, RequestStatus
from serving.routing import Router
from serving.scheduler import Scheduler
from serving.scheduler_config import SchedulerConfig
from serving.sources import RequestSource
from topology.errors import LayerwiseError

IterationTime = Callable[[IterationPlan], float | tuple[float, ...]]
_COMPLETE, _ARRIVE, _STAGE_FREE = 0, 1, 2  # order of events at one instant


@dataclass(frozen=True)
class IterationRecord:
    """One iteration as it ran: its plan, when it entered the first stage and left the last, its
    duration (the sum of its stage times) and the replica's state right after it was scheduled.
    ``stage_times_s``: each stage's time when they were given apart (empty: d equal shares)."""

    replica: int
    plan: IterationPlan
    start_s: float
    end_s: float
    duration_s: float
    num_waiting: int
    num_running: int
    kv_blocks_used: int
    stage_times_s: tuple[float, ...] = ()


def advance_stages(stage_free_s: list[float], ready_s: float, stage_times_s: tuple[float, ...],
                   first_stage: int = 0) -> float:
    """Send an iteration ready at ``ready_s`` through stages ``first_stage``, ``first_stage + 1``, ...
    (one time each from ``stage_times_s``): each starts when the iteration and the stage are both free
    (``stage_free_s``, updated); when it leaves the last of them. The one place this arithmetic lives:
    a measured run computes its own times with it, so a replay reproduces them to the last bit."""
    for offset, stage_s in enumerate(stage_times_s):
        stage = first_stage + offset
        ready_s = max(ready_s, stage_free_s[stage]) + stage_s
        stage_free_s[stage] = ready_s
    return ready_s


def stage_times_s(value: object, depth: int, iteration: int) -> tuple[tuple[float, ...], float, bool]:
    """An ``iteration_time_s`` answer as (time per stage, duration, given per stage), or one error: a
    duration must be a finite time > 0 s (split in d equal shares); per-stage times must be d finite
    times >= 0 s with a sum > 0."""
    if isinstance(value, tuple):
        ok = (len(value) == depth and all(isinstance(t, (int, float)) and not isinstance(t, bool)
                                           and math.isfinite(t) and t >= 0 for t in value) and sum(value) > 0)
        if not ok:
            raise LayerwiseError("iteration_time_s", f"returned {value!r} for iteration {iteration}; per-stage times "
                                 f"must be {depth} finite times >= 0 s with a sum > 0")
        times = tuple(float(t) for t in value)
        return times, sum(times), True
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise LayerwiseError("iteration_time_s", f"returned {value!r} for iteration {iteration}; "
                             f"must be a finite time > 0 s")
    share = float(value) / depth
    return (share,) * depth, float(value), False


@dataclass(frozen=True)
class ServingRun:
    """A finished run: every request's record (by id), every iteration (in start order) and the
    state over time (a sample at every instant something changed).

    A run of the fast driver at ``detail="records"`` (``serving.fast.driver``) keeps no plan per
    iteration: ``iterations`` is empty and ``iteration_log`` holds every iteration as columns.
    """

    records: tuple[RequestRecord, ...]
    iterations: tuple[IterationRecord, ...]
    samples: tuple[StateSample, ...]
    replicas: int
    pipeline_depth: int
    iteration_log: IterationLog | None = None

    @property
    def finished(self) -> tuple[RequestRecord, ...]:
        return tuple(record for record in self.records if record.status is RequestStatus.FINISHED)

    @property
    def rejected(self) -> tuple[RequestRecord, ...]:
        return tuple(record for record in self.records if record.status is RequestStatus.REJECTED)


class ReplicaState:
    """One replica's scheduler and pipeline: when each stage is next free, iterations in flight."""

    def __init__(self, config: SchedulerConfig, depth: int, index: int) -> None:
        self.scheduler = Scheduler(config, replica=index)
        self.stage_free_s = [0.0] * depth
        self.in_flight = 0

    def push(self, start_s: float, stage_times: tuple[float, ...]) -> float:
        """Send an iteration through the stages from ``start_s``; when it leaves the last one."""
        return advance_stages(self.stage_free_s, start_s, stage_times)


class _Run:
    """The state of one ``run_serving`` call."""

    def __init__(self, source: RequestSource, config: SchedulerConfig, iteration_time_s: IterationTime,
                 depth: int, replicas: int, router: str) -> None:
        self.source = source
        self.iteration_time_s = iteration_time_s
        self.depth = depth
        self.replicas = [ReplicaState(config, depth, index) for index in range(replicas)]
        self.router = Router(router)
        self.events: list[tuple[float, int, int, Any]] = []
        self.order = itertools.count()
        self.records: list[RequestRecord] = []
        self.iterations: list[IterationRecord] = []
        self.samples: list[StateSample] = []
        self.last_state: tuple[int, int, int] | None = None
        self.kv_blocks_total = config.num_blocks * replicas

    def push(self, time_s: float, kind: int, payload: Any) -> None:
        heapq.heappush(self.events, (time_s, kind, next(self.order), payload))

    def arrive(self, spec: RequestSpec, now_s: float) -> None:
        if spec.arrival_s < now_s:
            raise LayerwiseError("source", f"request {spec.request_id} arrives at {spec.arrival_s!r} s, "
                                 f"before the driver's time {now_s!r} s")
        self.push(spec.arrival_s, _ARRIVE, spec)

    def done(self, record: RequestRecord, now_s: float) -> None:
        self.records.append(record)
        following = self.source.after_done(record.request_id, now_s)
        if following is not None:
            self.arrive(following, now_s)

    def handle(self, now_s: float, kind: int, payload: Any) -> None:
        if kind == _COMPLETE:
            index, plan = payload
            replica = self.replicas[index]
            replica.in_flight -= 1
            for record in replica.scheduler.complete(plan, now_s):
                self.done(record, now_s)
        elif kind == _ARRIVE:
            index = self.router.pick([replica.scheduler for replica in self.replicas])
            rejected = self.replicas[index].scheduler.add_request(payload)
            if rejected is not None:
                self.done(rejected, now_s)

    def launch(self, index: int, now_s: float) -> None:
        """Start iterations on replica ``index`` while its first stage is free and its queue not full."""
        replica = self.replicas[index]
        scheduler = replica.scheduler
        while replica.in_flight < self.depth and replica.stage_free_s[0] <= now_s:
            plan = scheduler.schedule(now_s)
            if plan is None:
                return
            times, duration_s, per_stage = stage_times_s(self.iteration_time_s(plan), self.depth, plan.iteration)
            end_s = replica.push(now_s, times)
            replica.in_flight += 1
            self.push(end_s, _COMPLETE, (index, plan))
            self.iterations.append(IterationRecord(
                replica=index, plan=plan, start_s=now_s, end_s=end_s, duration_s=duration_s,
                num_waiting=scheduler.num_waiting, num_running=scheduler.num_running,
                kv_blocks_used=scheduler.kv_blocks_used, stage_times_s=times if per_stage else ()))
        if replica.in_flight < self.depth and replica.stage_free_s[0] > now_s:
            self.push(replica.stage_free_s[0], _STAGE_FREE, index)

    def sample(self, now_s: float) -> None:
        """Record the state at ``now_s`` if it changed since the last sample."""
        schedulers = [replica.scheduler for replica in self.replicas]
        state = (sum(s.num_waiting for s in schedulers), sum(s.num_running for s in schedulers),
                 sum(s.kv_blocks_used for s in schedulers))
        if state == self.last_state:
            return
        self.last_state = state
        waiting, running, used = state
        self.samples.append(StateSample(time_s=now_s, num_waiting=waiting, num_running=running,
                                        kv_blocks_used=used, kv_blocks_total=self.kv_blocks_total))

    def run(self) -> ServingRun:
        for spec in self.source.initial_requests():
            self.arrive(spec, 0.0)
        while self.events:
            now_s = self.events[0][0]
            while self.events and self.events[0][0] == now_s:
                _, kind, _, payload = heapq.heappop(self.events)
                self.handle(now_s, kind, payload)
            for index in range(len(self.replicas)):
                self.launch(index, now_s)
            self.sample(now_s)
        stuck = sum(replica.scheduler.num_in_system for replica in self.replicas)
        if stuck:
            raise RuntimeError(f"the driver ran out of events with {stuck} requests still in the system")
        return ServingRun(records=tuple(sorted(self.records, key=lambda record: record.request_id)),
                          iterations=tuple(self.iterations), samples=tuple(self.samples),
                          replicas=len(self.replicas), pipeline_depth=self.depth)


def run_serving(
    source: RequestSource,
    config: SchedulerConfig,
    iteration_time_s: IterationTime,
    *,
    pipeline_depth: int = 1,
    replicas: int = 1,
    router: str = "round_robin",
) -> ServingRun:
    """Serve every request of ``source`` on ``replicas`` replicas (each its own scheduler with
    ``config`` and a pipeline of ``pipeline_depth`` stages) behind ``router``, an iteration of plan p
    taking ``iteration_time_s(p)`` seconds; run until every request has finished or been rejected."""
    depth = positive_int("pipeline_depth", pipeline_depth)
    count = positive_int("replicas", replicas)
    return _Run(source, config, iteration_time_s, depth, count, router).run()
