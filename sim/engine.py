"""The discrete-event simulation: stage processes ordering work and holding links (SimPy).

Each stage (a TP group, advanced as one process) takes microbatches from its inbox in
arrival order, runs its compiled pass (one timeout per compute segment, one link hold per
all-reduce), then sends the activation to the next stage over the route between them. In
decode the last stage sends its output back to stage 0 (the closed loop: token t+1 of a
microbatch enters only after token t left the last stage); in prefill a driver starts the
next batch once every microbatch of the previous one has left the last stage.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import simpy

from sim.costs.model import CostModel
from sim.fabric import Fabric
from sim.program import PASS_TOTALS, PassCache, Step, Transfer, boundary_transfers, group_ports
from topology.cluster import Cluster
from topology.plan import Plan
from topology.workload import Workload

TraceSlice = tuple[str, str, str, float, float]  # (device, name, category, start_s, duration_s)
Message = tuple[int, int]  # (microbatch, iteration)


class Inbox:
    """A stage's FIFO of arrived microbatches; a process waits on an event only when it is empty."""

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._queue: deque[Message] = deque()
        self._waiter: simpy.Event | None = None

    def put(self, message: Message) -> None:
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            waiter.succeed(message)
        else:
            self._queue.append(message)

    def take(self) -> Message | None:
        """The oldest message, or None after arming :attr:`arrival` to wait for the next."""
        if self._queue:
            return self._queue.popleft()
        self._waiter = self._env.event()
        return None

    @property
    def arrival(self) -> simpy.Event:
        assert self._waiter is not None
        return self._waiter


@dataclass
class StageTally:
    """Accumulators of one stage (per device of its TP group) over measured iterations.

    During the run only what contention can change is summed per pass (``allreduce_s``,
    ``send_s``) and passes are counted per context length; :func:`finish_tally` then adds
    up the fixed per-pass costs of the programs that ran.
    """

    passes: int = 0
    runs_per_context: dict[int, int] = field(default_factory=dict)
    allreduce_s: float = 0.0  # collective time, waiting for busy links included
    send_s: float = 0.0  # point-to-point send time, waiting for busy links included
    totals: list[float] = field(default_factory=lambda: [0.0] * len(PASS_TOTALS))
    allreduce_events: int = 0
    allreduce_bytes_sent: float = 0.0
    p2p_messages: int = 0  # rank-level messages this stage sent
    p2p_transfers: int = 0  # stage-level sends to the next stage (one per microbatch pass)
    loopback_transfers: int = 0  # last stage back to stage 0 (decode)


@dataclass
class EngineRecord:
    """What one simulation produced (mutable while it runs, read afterwards)."""

    passes: PassCache  # the compiled stage passes that ran
    completions_s: list[list[float]]  # [microbatch][iteration]: left the last stage
    tallies: list[StageTally]
    bytes_sent: dict[str, float]  # per device, all iterations
    bytes_received: dict[str, float]
    events: int = 0
    end_s: float = 0.0
    trace: list[TraceSlice] = field(default_factory=list)


def simulate_events(
    plan: Plan, workload: Workload, cluster: Cluster, cost: CostModel, trace_iterations: int = 0
) -> EngineRecord:
    env = simpy.Environment()
    fabric = Fabric()
    passes = PassCache(plan, workload, cluster, cost)
    stages, k, mbs = plan.stages, plan.num_stages, plan.microbatches
    iterations, warmup = workload.iterations, workload.warmup_iters
    decode = workload.phase == "decode"
    nbytes = passes.get(0, 0).stage_pass.output_bytes
    forward: list[tuple[Transfer, ...]] = [
        boundary_transfers(stages[s], stages[s + 1], nbytes, cluster, cost) for s in range(k - 1)
    ]
    forward.append(boundary_transfers(stages[-1], stages[0], nbytes, cluster, cost) if decode else ())
    ports = [group_ports(stage, cluster) for stage in stages]
    record = EngineRecord(
        passes=passes,
        completions_s=[[0.0] * iterations for _ in range(mbs)],
        tallies=[StageTally() for _ in stages],
        bytes_sent={d: 0.0 for d in plan.devices},
        bytes_received={d: 0.0 for d in plan.devices},
    )
    inboxes = [Inbox(env) for _ in stages]
    trace_stop = warmup + trace_iterations
    batch_left = [0]
    batch_done: list[simpy.Event] = [env.event()]

    contexts = passes.contexts
    programs = passes.programs
    sends_done = [0] * k  # stage-level sends made, all iterations (bytes are tallied from these)
    passes_done = [0] * k

    def stage_process(s: int):  # type: ignore[no-untyped-def]
        inbox, tally, stage, group = inboxes[s], record.tallies[s], stages[s], ports[s]
        last = s == k - 1
        timeout, reserve = env.timeout, fabric.reserve
        transfers = forward[s]
        timed_transfers = tuple((t.hops, t.cost.serialization_s, t.cost.time_s) for t in transfers)
        while True:
            message = inbox.take()
            if message is None:
                message = yield inbox.arrival
                record.events += 1
            mb, it = message
            program = programs.get((s, contexts[it])) or passes.get(s, it)
            traced = warmup <= it < trace_stop
            allreduce_s = 0.0
            record.events += len(program.steps)
            for hold_s, compute_s, step in program.timed_steps:
                if hold_s:
                    now = env.now
                    wait_s = reserve(group, now, hold_s) + hold_s - now  # waiting for busy ports + the hold
                    allreduce_s += wait_s
                    if traced:
                        _trace_allreduce(record, stage.devices, step, now + wait_s - hold_s)
                    if traced and step.compute is not None:
                        _trace_ops(record, stage.devices, step.compute.ops, now + wait_s)
                    yield timeout(wait_s + compute_s)
                else:
                    if traced and step.compute is not None:
                        _trace_ops(record, stage.devices, step.compute.ops, env.now)
                    yield timeout(compute_s)
            passes_done[s] += 1
            if last:
                record.completions_s[mb][it] = env.now
            next_it = it + 1 if last else it
            send_s = 0.0
            if transfers:  # the final token leaves the last stage too, though nothing follows it
                now = end = env.now
                for hops, serialization_s, time_s in timed_transfers:
                    arrival = reserve(hops, now, serialization_s) + time_s
                    if arrival > end:
                        end = arrival
                if traced:
                    for t in transfers:
                        record.trace.append((t.src, f"send -> {t.dst}", "communication", now, end - now))
                sends_done[s] += 1
                send_s = end - now
                if send_s > 0.0:
                    record.events += 1
                    yield timeout(send_s)
            if it >= warmup:
                tally.passes += 1
                context = contexts[it]
                tally.runs_per_context[context] = tally.runs_per_context.get(context, 0) + 1
                tally.allreduce_s += allreduce_s
                tally.send_s += send_s
            if not last:
                inboxes[s + 1].put((mb, it))
            elif decode:
                if next_it < iterations:
                    inboxes[0].put((mb, next_it))
            else:
                batch_left[0] -= 1
                if batch_left[0] == 0:
                    batch_done[0].succeed()

    def prefill_driver():  # type: ignore[no-untyped-def]
        for it in range(iterations):
            batch_left[0] = mbs
            batch_done[0] = env.event()
            for mb in range(mbs):
                inboxes[0].put((mb, it))
            yield batch_done[0]
            record.events += 1

    for s in range(k):
        env.process(stage_process(s))
    if decode:
        for mb in range(mbs):
            inboxes[0].put((mb, 0))
    else:
        env.process(prefill_driver())
    env.run()
    record.end_s = env.now
    for s, tally in enumerate(record.tallies):
        finish_tally(tally, passes, s, len(forward[s]), last=s == k - 1, loops_back=decode and k > 1)
    for s in range(k):
        allreduce_bytes = passes_done[s] * passes.get(s, 0).allreduce_bytes_sent  # the same at every context
        for device in stages[s].devices:  # a ring all-reduce sends and receives the same bytes per rank
            record.bytes_sent[device] += allreduce_bytes
            record.bytes_received[device] += allreduce_bytes
        for t in forward[s]:
            record.bytes_sent[t.src] += sends_done[s] * t.cost.bytes_sent_per_rank
            record.bytes_received[t.dst] += sends_done[s] * t.cost.bytes_sent_per_rank
    return record


def finish_tally(tally: StageTally, passes: PassCache, stage: int, messages: int, last: bool, loops_back: bool) -> None:
    """Add the fixed per-pass costs of every measured pass (by context length) to the tally."""
    for context, runs in sorted(tally.runs_per_context.items()):
        program = passes.for_context(stage, context)
        tally.totals = [t + runs * v for t, v in zip(tally.totals, program.totals, strict=True)]
        tally.allreduce_events += runs * program.allreduce_count
        tally.allreduce_bytes_sent += runs * program.allreduce_bytes_sent
    tally.p2p_messages = tally.passes * messages
    if last and loops_back:
        tally.loopback_transfers = tally.passes
    elif not last:
        tally.p2p_transfers = tally.passes


def _trace_allreduce(record: EngineRecord, devices: tuple[str, ...], step: Step, begin_s: float) -> None:
    if step.allreduce is not None:
        for device in devices:
            record.trace.append((device, step.allreduce.label, "communication", begin_s, step.allreduce.duration_s))


def _trace_ops(record: EngineRecord, devices: tuple[str, ...], ops: tuple, start_s: float) -> None:  # type: ignore[type-arg]
    for device in devices:
        t = start_s
        for op in ops:
            record.trace.append((device, op.name, "compute", t, op.time_s))
            t += op.time_s
