"""Disaggregated serving (prefill and decode on separate replicas, as DistServe and Dynamo deploy it): a
pure discrete-event driver, the counterpart of :mod:`serving.driver` for two pools.

A request arrives at a prefill replica (the router picks among ``prefill_replicas``), whose scheduler
serves it as a request of one output token: its prompt, in chunks, and the first token, sampled when
its last chunk's iteration ends (that is its TTFT). If it wants more tokens, its KV cache then moves to
a decode replica (the router picks among ``decode_replicas`` at that moment): the transfer takes
``kv_transfer_s(prompt_tokens, prefill_replica, decode_replica)`` seconds and holds the prefill
replica's send side and the decode replica's receive side (a transfer waits for both to be free).
On arrival the decode replica's scheduler queues it with its prompt computed and its first token
emitted (:meth:`serving.scheduler.Scheduler.add_prefilled`), and decodes the rest.

Both pools keep a pipeline of iterations in flight as :mod:`serving.driver` does (its stage arithmetic:
stage-uniform, or the stage times ``iteration_time_s`` gives; at most ``depth`` in flight). A request
that could never fit a decode replica (prompt + output beyond ``max_model_len_tokens`` or its KV beyond
the pool) is rejected at arrival. The prefill side frees a
request's KV when its first token is sampled (the transfer's send buffer is not modelled).
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from serving.batch import IterationPlan
from serving.driver import IterationTime, ReplicaState, stage_times_s
from serving.requests import RequestRecord, RequestSpec, RequestStatus
from serving.routing import Router
from serving.scheduler import Scheduler
from serving.scheduler_config import SchedulerConfig
from serving.sources import RequestSource
from topology.errors import LayerwiseError

KvTransferTime = Callable[[int, int, int], float]  # (prompt tokens, prefill replica, decode replica) -> s
PREFILL_POOL, DECODE_POOL = "prefill", "decode"
_COMPLETE, _KV_ARRIVE, _ARRIVE, _STAGE_FREE = 0, 1, 2, 3  # order of events at one instant


@dataclass(frozen=True)
class PoolIteration:
    """One iteration of one pool's replica: when it entered the first stage and left the last."""

    pool: str
    replica: int
    plan: IterationPlan
    start_s: float
    end_s: float
    duration_s: float


@dataclass(frozen=True)
class KvTransfer:
    request_id: int
    prefill_replica: int
    decode_replica: int
    ready_s: float  # the first token was sampled
    start_s: float  # both ends free
    end_s: float


@dataclass(frozen=True)
class DisaggregatedRun:
    """A finished run: every request's record (by id; ``replica`` is the decode replica, or the prefill
    replica for a one-token request), both pools' iterations, and every KV transfer."""

    records: tuple[RequestRecord, ...]
    iterations: tuple[PoolIteration, ...]
    transfers: tuple[KvTransfer, ...]


@dataclass(frozen=True)
class Pool:
    """One pool: its replicas' scheduler, their count, pipeline depth and iteration time."""

    config: SchedulerConfig
    replicas: int
    depth: int
    iteration_time_s: IterationTime


class _Run:
    def __init__(self, source: RequestSource, prefill: Pool, decode: Pool, router: str,
                 kv_transfer_s: KvTransferTime) -> None:
        self.source, self.kv_transfer_s = source, kv_transfer_s
        self.pools = {PREFILL_POOL: prefill, DECODE_POOL: decode}
        self.replicas = {name: [ReplicaState(pool.config, pool.depth, i) for i in range(pool.replicas)]
                         for name, pool in self.pools.items()}
        self.routers = {name: Router(router) for name in self.pools}
        self.send_free_s = [0.0] * prefill.replicas
        self.receive_free_s = [0.0] * decode.replicas
        self.specs: dict[int, RequestSpec] = {}
        self.events: list[tuple[float, int, int, Any]] = []
        self.order = itertools.count()
        self.records: list[RequestRecord] = []
        self.iterations: list[PoolIteration] = []
        self.transfers: list[KvTransfer] = []
        self.checker = Scheduler(decode.config)  # only asked why a request can never fit a decode replica

    def push(self, time_s: float, kind: int, payload: Any) -> None:
        heapq.heappush(self.events, (time_s, kind, next(self.order), payload))

    def done(self, record: RequestRecord, now_s: float) -> None:
        self.records.append(record)
        following = self.source.after_done(record.request_id, now_s)
        if following is not None:
            self.push(following.arrival_s, _ARRIVE, following)

    def arrive(self, spec: RequestSpec, now_s: float) -> None:
        self.specs[spec.request_id] = spec
        reason = self.checker.rejection_reason(spec)
        if reason:
            record = RequestRecord(spec.request_id, spec.arrival_s, spec.prompt_tokens, spec.output_tokens,
                                   RequestStatus.REJECTED, None, (), None, 0, rejected_because=reason)
            self.done(record, now_s)
            return
        prefill = self.replicas[PREFILL_POOL]
        index = self.routers[PREFILL_POOL].pick([replica.scheduler for replica in prefill])
        rejected = prefill[index].scheduler.add_request(dataclasses.replace(spec, output_tokens=1))
        if rejected is not None:
            self.done(dataclasses.replace(rejected, output_tokens=spec.output_tokens), now_s)

    def prefilled(self, record: RequestRecord, prefill_index: int, now_s: float) -> None:
        """A prefill replica sampled a request's first token: done if it wanted one, else its KV moves."""
        spec = self.specs[record.request_id]
        if spec.output_tokens == 1:
            self.done(dataclasses.replace(record, output_tokens=1), now_s)
            return
        decode = self.replicas[DECODE_POOL]
        target = self.routers[DECODE_POOL].pick([replica.scheduler for replica in decode])
        start_s = max(now_s, self.send_free_s[prefill_index], self.receive_free_s[target])
        end_s = start_s + self.kv_transfer_s(spec.prompt_tokens, prefill_index, target)
        self.send_free_s[prefill_index] = self.receive_free_s[target] = end_s
        self.transfers.append(KvTransfer(spec.request_id, prefill_index, target, now_s, start_s, end_s))
        assert record.first_scheduled_s is not None and record.first_token_s is not None
        self.push(end_s, _KV_ARRIVE, (target, spec, record.first_scheduled_s, record.first_token_s))

    def handle(self, now_s: float, kind: int, payload: Any) -> None:
        if kind == _COMPLETE:
            name, index, plan = payload
            replica = self.replicas[name][index]
            replica.in_flight -= 1
            for record in replica.scheduler.complete(plan, now_s):
                if name == PREFILL_POOL:
                    self.prefilled(record, index, now_s)
                else:
                    self.done(record, now_s)
        elif kind == _KV_ARRIVE:
            target, spec, first_scheduled_s, first_token_s = payload
            rejected = self.replicas[DECODE_POOL][target].scheduler.add_prefilled(spec, first_scheduled_s,
                                                                                  first_token_s)
            if rejected is not None:
                self.done(rejected, now_s)
        elif kind == _ARRIVE:
            self.arrive(payload, now_s)

    def launch(self, name: str, index: int, now_s: float) -> None:
        pool, replica = self.pools[name], self.replicas[name][index]
        while replica.in_flight < pool.depth and replica.stage_free_s[0] <= now_s:
            plan = replica.scheduler.schedule(now_s)
            if plan is None:
                return
            times, duration_s, _ = stage_times_s(pool.iteration_time_s(plan), pool.depth, plan.iteration)
            end_s = replica.push(now_s, times)
            replica.in_flight += 1
            self.push(end_s, _COMPLETE, (name, index, plan))
            self.iterations.append(PoolIteration(name, index, plan, now_s, end_s, duration_s))
        if replica.in_flight < pool.depth and replica.stage_free_s[0] > now_s:
            self.push(replica.stage_free_s[0], _STAGE_FREE, None)

    def run(self) -> DisaggregatedRun:
        for spec in self.source.initial_requests():
            if spec.arrival_s < 0:
                raise LayerwiseError("source", f"request {spec.request_id} arrives before t = 0")
            self.push(spec.arrival_s, _ARRIVE, spec)
        while self.events:
            now_s = self.events[0][0]
            while self.events and self.events[0][0] == now_s:
                _, kind, _, payload = heapq.heappop(self.events)
                self.handle(now_s, kind, payload)
            for name, replicas in self.replicas.items():
                for index in range(len(replicas)):
                    self.launch(name, index, now_s)
        stuck = sum(r.scheduler.num_in_system for replicas in self.replicas.values() for r in replicas)
        if stuck:
            raise RuntimeError(f"the driver ran out of events with {stuck} requests still in the system")
        return DisaggregatedRun(records=tuple(sorted(self.records, key=lambda record: record.request_id)),
                                iterations=tuple(self.iterations), transfers=tuple(self.transfers))


def run_disaggregated(source: RequestSource, prefill: Pool, decode: Pool, router: str,
                      kv_transfer_s: KvTransferTime) -> DisaggregatedRun:
    """Serve every request of ``source`` on a prefill pool and a decode pool (module docstring)."""
    for name, pool in ((PREFILL_POOL, prefill), (DECODE_POOL, decode)):
        if isinstance(pool.replicas, bool) or not isinstance(pool.replicas, int) or pool.replicas < 1:
            raise LayerwiseError(f"{name}_replicas", f"must be a positive integer, got {pool.replicas!r}")
        if isinstance(pool.depth, bool) or not isinstance(pool.depth, int) or pool.depth < 1:
            raise LayerwiseError(f"{name} pipeline_depth", f"must be a positive integer, got {pool.depth!r}")
    return _Run(source, prefill, decode, router, kv_transfer_s).run()
