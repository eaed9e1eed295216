"""The discrete-event simulation: one SimPy process per stage, inboxes as stores, links on a fabric.

                 token            token                     token
    inbox 0 --> [stage 0] --send--> inbox 1 --> [stage 1] --send--> ... --> [stage k-1] --+
       ^                                                                                  |
       +------------------- decode: the next token loops back ---------------------------+
       (prefill: the driver puts every microbatch of batch i once batch i - 1 has left)

* :mod:`sim.stage_process`: the stage process and the prefill driver;
* :mod:`sim.fabric`: the links (a FIFO booking per directed hop);
* :mod:`sim.passes`: what a stage executes (compiled passes); :mod:`sim.costs.transfers`: the messages between stages;
* :mod:`sim.recorder`: the live event log (:class:`~sim.recorder.Recorder`); :mod:`sim.results`: the results it gives;
* :mod:`sim.steady`: skipping whole periods once the state repeats (exact).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import simpy

from sim.costs.model import CostModel
from sim.costs.transfers import Transfer, boundary_time_s, boundary_transfers, group_ports
from sim.fabric import Fabric
from sim.passes import PassCache
from sim.recorder import Recorder, TraceSlice
from sim.stage_process import PrefillDriver, StageProcess, StageWiring, Token
from sim.steady import SteadyState
from topology.cluster import Cluster, Hop
from topology.plan import Plan
from topology.workload import Workload


@dataclass
class EngineRecord:
    """What one simulation produced."""

    passes: PassCache  # the compiled stage passes
    recorder: Recorder  # the event log's tallies
    messages_per_pass: list[int]  # rank-level messages of each stage's send
    loops_back: bool  # decode with more than one stage: the last stage sends back to stage 0
    bytes_sent: dict[str, float]  # per device, all iterations
    bytes_received: dict[str, float]
    skipped_iterations: int = 0  # iterations the steady state skipped instead of replaying
    end_s: float = 0.0
    trace: list[TraceSlice] = field(default_factory=list)


def simulate_events(
    plan: Plan, workload: Workload, cluster: Cluster, cost: CostModel, trace_iterations: int = 0,
    steady_state: bool = True, progress: Callable[[int, int], None] | None = None,
) -> EngineRecord:
    """Simulate the plan; ``steady_state=False`` replays every iteration (what the skips must equal);
    ``progress(done, total)`` hears of each iteration as microbatch 0 leaves the last stage."""
    env = simpy.Environment()
    fabric = Fabric()
    passes = PassCache(plan, workload, cluster, cost, named=trace_iterations > 0)
    recorder = Recorder(plan.num_stages, plan.microbatches, workload.warmup_iters, workload.iterations)
    decode = workload.phase == "decode"
    transfers = stage_transfers(plan, passes.get(0, 0).stage_pass.output_bytes, cluster, cost, loops_back=decode)
    inboxes = [simpy.Store(env) for _ in plan.stages]
    trace: list[TraceSlice] = []
    traced_until = workload.warmup_iters + trace_iterations

    def traced(iteration: int) -> bool:
        return workload.warmup_iters <= iteration < traced_until

    driver: list[PrefillDriver] = []
    steady = _steady_state(env, fabric, recorder, workload, traced_until, steady_state)
    stages: list[StageProcess] = []
    ports = [group_ports(stage, cluster) if stage.tp_degree > 1 else () for stage in plan.stages]  # TP1: no all-reduce
    private = private_stages(ports, transfers)
    for s, stage in enumerate(plan.stages):
        last = s == plan.num_stages - 1
        wiring = StageWiring(
            index=s, devices=stage.devices, ports=ports[s], private=private[s], transfers=transfers[s],
            send_s=boundary_time_s(transfers[s]),
            inbox=inboxes[s], forward=_forward(inboxes, s, last, decode, workload.iterations, driver),
            on_completed=_on_completed(recorder, steady, decode, env, progress, workload.iterations) if last else None)
        stages.append(StageProcess(env, wiring, passes, fabric, recorder, traced, trace))
    if decode:
        for microbatch in range(plan.microbatches):
            inboxes[0].put(Token(microbatch, 0))
    else:
        driver.append(PrefillDriver(env, plan.microbatches, workload.iterations, inboxes[0], recorder,
                                    steady.at_boundary))
    steady.attach(stages, driver, inboxes)
    env.run()
    return _record(plan, passes, recorder, transfers, decode, steady.skipped_iterations, env.now, trace)


def private_stages(ports: list[tuple[Hop, ...]], transfers: list[tuple[Transfer, ...]]) -> list[bool]:
    """Per stage: whether no other stage ever holds a hop its all-reduces or its sends hold.

    Such a stage books those hops one use after another (a step ends after its all-reduce's hold;
    a send ends ``latency`` after its last hold), so every hold starts at once: its pass runs as
    one step of :attr:`PassProgram.uncontended_s` and its send as one of
    :func:`boundary_time_s`, exactly (up to rounding)."""
    owners: dict[Hop, set[int]] = {}
    for s, (own, sends) in enumerate(zip(ports, transfers, strict=True)):
        for hop in (*own, *(hop for t in sends for hop in t.hops)):
            owners.setdefault(hop, set()).add(s)
    shared = {hop for hop, who in owners.items() if len(who) > 1}
    return [shared.isdisjoint(own) and all(shared.isdisjoint(t.hops) for t in sends)
            for own, sends in zip(ports, transfers, strict=True)]


def stage_transfers(plan: Plan, nbytes: int, cluster: Cluster, cost: CostModel,
                    loops_back: bool) -> list[tuple[Transfer, ...]]:
    """The messages of each stage's send: to the next stage, and from the last back to stage 0 in decode."""
    stages, k = plan.stages, plan.num_stages
    sends = [boundary_transfers(stages[s], stages[s + 1], nbytes, cluster, cost) for s in range(k - 1)]
    sends.append(boundary_transfers(stages[-1], stages[0], nbytes, cluster, cost) if loops_back else ())
    return sends


def _forward(inboxes: list[simpy.Store], stage: int, last: bool, decode: bool, iterations: int,
             driver: list[PrefillDriver]) -> Any:
    """Where a token goes after ``stage``: the next inbox; from the last stage, stage 0's (decode,
    one iteration on) or back to the prefill driver."""
    def forward(token: Token) -> None:
        if not last:
            inboxes[stage + 1].put(token)
        elif decode:
            token.iteration += 1
            if token.iteration < iterations:
                inboxes[0].put(token)
        else:
            driver[0].token_left(token)

    return forward


def _on_completed(recorder: Recorder, steady: SteadyState, decode: bool, env: simpy.Environment,
                  progress: Callable[[int, int], None] | None, iterations: int) -> Any:
    def on_completed(token: Token) -> None:
        recorder.completed(token.microbatch, token.iteration, env.now)
        if token.microbatch == 0:
            if progress is not None:
                progress(token.iteration + 1, iterations)
            if decode:
                steady.at_boundary(token.iteration)

    return on_completed


def _steady_state(env: simpy.Environment, fabric: Fabric, recorder: Recorder, workload: Workload,
                  traced_until: int, wanted: bool) -> SteadyState:
    repeats = not (workload.phase == "decode" and workload.context_growth == "grow")
    return SteadyState(env, fabric, recorder, (workload.warmup_iters, traced_until, workload.iterations),
                       enabled=wanted and repeats)


def _record(plan: Plan, passes: PassCache, recorder: Recorder, transfers: list[tuple[Transfer, ...]],
            decode: bool, skipped: int, end_s: float, trace: list[TraceSlice]) -> EngineRecord:
    bytes_sent = {d: 0.0 for d in plan.devices}
    bytes_received = {d: 0.0 for d in plan.devices}
    for s, stage in enumerate(plan.stages):
        runs = recorder.passes_run[s]
        allreduce_bytes = runs * passes.get(s, 0).allreduce_bytes_sent  # the same at every context
        for device in stage.devices:  # a ring all-reduce sends and receives the same bytes per rank
            bytes_sent[device] += allreduce_bytes
            bytes_received[device] += allreduce_bytes
        for t in transfers[s]:
            bytes_sent[t.src] += runs * t.cost.bytes_sent_per_rank
            bytes_received[t.dst] += runs * t.cost.bytes_sent_per_rank
    return EngineRecord(passes=passes, recorder=recorder, messages_per_pass=[len(t) for t in transfers],
                        loops_back=decode and plan.num_stages > 1, bytes_sent=bytes_sent,
                        bytes_received=bytes_received, skipped_iterations=skipped, end_s=end_s, trace=trace)
