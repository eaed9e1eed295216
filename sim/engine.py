"""The discrete-event simulation: stage processes ordering work and holding links (SimPy).

Each stage (a TP group, advanced as one process) takes microbatches from its inbox in
arrival order, runs its compiled pass (one timeout per compute segment, one link hold per
all-reduce), then sends the activation to the next stage over the route between them. In
decode the last stage sends its output back to stage 0 (the closed loop: token t+1 of a
microbatch enters only after token t left the last stage); in prefill a driver starts the
next batch once every microbatch of the previous one has left the last stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import simpy

from sim.costs.model import CostModel
from sim.fabric import Fabric
from sim.program import PASS_TOTALS, PassCache, Transfer, boundary_transfers, group_ports
from topology.cluster import Cluster
from topology.plan import Plan
from topology.workload import Workload

TraceSlice = tuple[str, str, str, float, float]  # (device, name, category, start_s, duration_s)


@dataclass
class StageTally:
    """Accumulators of one stage (per device of its TP group) over measured iterations."""

    passes: int = 0
    totals: list[float] = field(default_factory=lambda: [0.0] * len(PASS_TOTALS))
    allreduce_s: float = 0.0  # collective time, waiting for busy links included
    send_s: float = 0.0  # point-to-point send time, waiting for busy links included
    allreduce_events: int = 0
    allreduce_bytes_sent: float = 0.0
    p2p_messages: int = 0  # rank-level messages this stage sent
    p2p_transfers: int = 0  # stage-level sends (one per microbatch pass)
    loopback_transfers: int = 0


@dataclass
class EngineRecord:
    """What one simulation produced (mutable while it runs, read afterwards)."""

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
        completions_s=[[0.0] * iterations for _ in range(mbs)],
        tallies=[StageTally() for _ in stages],
        bytes_sent={d: 0.0 for d in plan.devices},
        bytes_received={d: 0.0 for d in plan.devices},
    )
    inboxes = [simpy.Store(env) for _ in stages]
    trace_stop = warmup + trace_iterations
    batch_left = [0]
    batch_done: list[simpy.Event] = [env.event()]

    def send(s: int, transfers: tuple[Transfer, ...], traced: bool):  # type: ignore[no-untyped-def]
        now = env.now
        end = now
        for t in transfers:
            start = fabric.reserve(t.hops, now, t.cost.serialization_s)
            end = max(end, start + t.cost.time_s)
            record.bytes_sent[t.src] += t.cost.bytes_sent_per_rank
            record.bytes_received[t.dst] += t.cost.bytes_sent_per_rank
        if traced:
            for t in transfers:
                record.trace.append((t.src, f"send -> {t.dst}", "communication", now, end - now))
        if end > now:
            record.events += 1
            yield env.timeout(end - now)
        return end - now

    def stage_process(s: int):  # type: ignore[no-untyped-def]
        inbox, tally, stage = inboxes[s], record.tallies[s], stages[s]
        last = s == k - 1
        while True:
            mb, it = yield inbox.get()
            record.events += 1
            program = passes.get(s, it)
            measured = it >= warmup
            traced = warmup <= it < trace_stop
            allreduce_s = 0.0
            for step in program.steps:
                now = env.now
                if step.is_compute:
                    record.events += 1
                    yield env.timeout(step.duration_s)
                    if traced:
                        _trace_ops(record, stage.devices, step.segment.ops, now)
                else:
                    begin = fabric.reserve(ports[s], now, step.duration_s)
                    end = begin + step.duration_s
                    record.events += 1
                    yield env.timeout(end - now)
                    allreduce_s += end - now
                    if traced:
                        for device in stage.devices:
                            record.trace.append((device, step.segment.label, "communication", begin, step.duration_s))
            for device in stage.devices:
                record.bytes_sent[device] += program.allreduce_bytes_sent
                record.bytes_received[device] += program.allreduce_bytes_sent
            if last:
                record.completions_s[mb][it] = env.now
            next_it = it + 1 if last else it
            to_send = forward[s] if (not last or next_it < iterations) else ()
            send_s = yield from send(s, to_send, traced)
            if measured:
                tally.passes += 1
                for i, value in enumerate(program.totals):
                    tally.totals[i] += value
                tally.allreduce_s += allreduce_s
                tally.send_s += send_s
                tally.allreduce_events += program.allreduce_count
                tally.allreduce_bytes_sent += program.allreduce_bytes_sent
                tally.p2p_messages += len(to_send)
                if last and decode and k > 1:
                    tally.loopback_transfers += 1  # the final token leaves too, even if nothing follows it
                elif not last:
                    tally.p2p_transfers += 1
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
    return record


def _trace_ops(record: EngineRecord, devices: tuple[str, ...], ops: tuple, start_s: float) -> None:  # type: ignore[type-arg]
    for device in devices:
        t = start_s
        for op in ops:
            record.trace.append((device, op.name, "compute", t, op.time_s))
            t += op.time_s
