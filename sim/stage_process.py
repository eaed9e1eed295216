"""The processes of the event simulation: a pipeline stage, and the prefill batch driver (SimPy).

A :class:`Token` is one microbatch at one iteration; it circulates through the stages' inboxes
(``simpy.Store``). A :class:`StageProcess` takes the oldest token from its inbox, runs its
compiled pass (compute segments as timeouts; each all-reduce first holds every port of the TP
group on the fabric; a stage whose hops no other stage uses runs its pass and its send as one
timeout each), then sends the activation to the next stage over the route between them and puts the token in that
stage's inbox. In decode the last stage sends back to stage 0 (the
closed loop: token t+1 of a microbatch enters only after token t left the last stage); in
prefill the :class:`PrefillDriver` starts the next batch once every microbatch of the last one
has left the last stage.

Processes keep no absolute time across a ``yield`` (only durations), and say where they are
(:attr:`StageProcess.where`), so the steady-state detector can compare and shift their state.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy

from sim.costs.transfers import Transfer
from sim.fabric import Fabric, Hop
from sim.passes import PassCache, PassProgram
from sim.recorder import Recorder, TraceSlice


@dataclass
class Token:
    """One microbatch at one iteration (mutable: the steady state moves it whole periods ahead)."""

    microbatch: int
    iteration: int


@dataclass(frozen=True)
class StageWiring:
    """What a stage process is connected to."""

    index: int
    devices: tuple[str, ...]
    ports: tuple[Hop, ...]  # what an all-reduce of the group holds
    private: bool  # no other stage holds a hop this one does: a pass and a send are one step each
    send_s: float  # a send when nothing contends (sim.costs.transfers.boundary_time_s)
    transfers: tuple[Transfer, ...]  # the messages of one send to the next stage
    inbox: simpy.Store
    forward: Callable[[Token], None]  # puts the token where it goes next
    on_completed: Callable[[Token], None] | None  # the last stage: a token left the pipeline


class StageProcess:
    """One pipeline stage, advanced as one process for its whole TP group."""

    def __init__(self, env: simpy.Environment, wiring: StageWiring, passes: PassCache, fabric: Fabric,
                 recorder: Recorder, traced: Callable[[int], bool], trace: list[TraceSlice]) -> None:
        self.env, self.wiring, self.passes, self.fabric, self.recorder = env, wiring, passes, fabric, recorder
        self.traced, self.trace = traced, trace
        self.token: Token | None = None  # the token in hand
        self.where: tuple[Any, ...] = ("inbox",)  # where the process waits: ("inbox",), ("step", i), ("send",)
        self.allreduce_s = 0.0  # this pass so far: time in all-reduces no compute hides, waiting included
        self.process = env.process(self.run())

    def run(self) -> Generator[simpy.Event, Any, None]:
        wiring = self.wiring
        while True:
            self.where, self.token = ("inbox",), None
            token = yield wiring.inbox.get()
            self.token, self.allreduce_s = token, 0.0
            program = self.passes.get(wiring.index, token.iteration)
            yield from self._compute(program, self.traced(token.iteration))
            if wiring.on_completed is not None:
                wiring.on_completed(token)
            send_s = yield from self._send(self.traced(token.iteration))
            self.recorder.pass_done(wiring.index, token.iteration, program, self.allreduce_s, send_s)
            wiring.forward(token)

    def _compute(self, program: PassProgram, traced: bool) -> Generator[simpy.Event, Any, None]:
        """Each step: an optional all-reduce (holding the group's ports), then a compute segment.
        In a private stage nothing can delay an all-reduce, and an untraced pass is one timeout."""
        env = self.env
        if self.wiring.private and not traced:
            self.where = ("step", 0)
            self.allreduce_s += program.uncontended_allreduce_s
            yield env.timeout(program.uncontended_s)
            return
        for index, (hold_s, compute_s, overlapped, step) in enumerate(program.timed_steps):
            self.where = ("step", index)
            wait_s = 0.0
            if hold_s:
                start_s = self.fabric.hold(self.wiring.ports, env.now, hold_s)
                wait_s = start_s + hold_s - env.now  # waiting for busy ports, then the all-reduce itself
                self.allreduce_s += max(0.0, wait_s - compute_s) if overlapped else wait_s  # what no compute hides
            if traced:
                self._trace_step(step, env.now + wait_s - hold_s, env.now if overlapped else env.now + wait_s)
            yield env.timeout(max(wait_s, compute_s) if overlapped else wait_s + compute_s)

    def _send(self, traced: bool) -> Generator[simpy.Event, Any, float]:
        """Every rank-level message of the boundary; the stage is blocked until the last arrives."""
        transfers = self.wiring.transfers
        if not transfers:
            return 0.0
        if self.wiring.private and not traced:  # nothing else holds these hops
            self.where = ("send",)
            yield self.env.timeout(self.wiring.send_s)
            return self.wiring.send_s
        now = end = self.env.now
        for transfer in transfers:
            start = self.fabric.hold(transfer.hops, now, transfer.cost.serialization_s)
            end = max(end, start + transfer.cost.time_s)
        send_s = end - now
        if traced:
            self.trace.extend((t.src, f"send -> {t.dst}", "communication", now, send_s) for t in transfers)
        if send_s > 0.0:
            self.where = ("send",)
            yield self.env.timeout(send_s)
        return send_s

    def _trace_step(self, step: Any, allreduce_start_s: float, compute_start_s: float) -> None:
        devices = self.wiring.devices
        if step.allreduce is not None:
            self.trace.extend((d, step.allreduce.label, "communication", allreduce_start_s, step.allreduce.duration_s)
                              for d in devices)
        if step.compute is not None:
            for device in devices:
                t = compute_start_s
                for op in step.compute.ops:
                    self.trace.append((device, op.name, "compute", t, op.time_s))
                    t += op.time_s


class PrefillDriver:
    """Starts batch ``i`` (every microbatch into stage 0) once batch ``i - 1`` has left the last stage."""

    def __init__(self, env: simpy.Environment, microbatches: int, iterations: int, first_inbox: simpy.Store,
                 recorder: Recorder, at_boundary: Callable[[int], None]) -> None:
        self.env, self.microbatches, self.iterations = env, microbatches, iterations
        self.first_inbox, self.recorder, self.at_boundary = first_inbox, recorder, at_boundary
        self.next_iteration = 0  # an attribute, not a loop variable: the steady state moves it
        self.left = 0  # microbatches of the current batch still in the pipeline
        self.done: simpy.Event = env.event()
        self.process = env.process(self.run())

    def run(self) -> Generator[simpy.Event, Any, None]:
        while self.next_iteration < self.iterations:
            self.at_boundary(self.next_iteration)
            iteration = self.next_iteration
            self.recorder.batch_started(iteration, self.env.now)
            self.left, self.done = self.microbatches, self.env.event()
            for microbatch in range(self.microbatches):
                self.first_inbox.put(Token(microbatch, iteration))
            yield self.done
            self.next_iteration += 1

    def token_left(self, token: Token) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.succeed()
