"""Exact steady state: when the simulation's state repeats, skip whole periods instead of replaying them.

At every iteration boundary (decode: microbatch 0 leaves the last stage; prefill: a batch
starts) the detector takes a :class:`Snapshot` of everything the future depends on, relative to
now and to the boundary's iteration ``k``: each process's place (where it waits, the token it
holds and its iteration offset, its partial all-reduce time), the tokens in the inboxes, every
pending event in the order SimPy will process it with its time from now, and how long each link
stays booked. The simulation is deterministic, so if the snapshot at boundary ``k`` equals the
one at an earlier boundary ``j`` (times to within ``TIME_TOLERANCE`` of the clock), everything
after ``k`` repeats everything after ``j``, ``P = k - j`` iterations and ``D = t_k - t_j``
seconds later. Then ``n`` whole periods are skipped at once: the clock, every pending event and
every link booking move ``n * D`` later, every live token ``n * P`` iterations on, and every
tally grows by ``n`` times its growth from ``j`` to ``k``.

A skip never crosses an iteration whose passes are treated differently: the end of the warmup
(tallies start), the traced iterations, and the last two iterations (the pipeline drains); those
are simulated event by event. With a growing context every iteration's passes differ, so nothing
repeats and the run is replayed whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import simpy

from sim.fabric import Fabric
from sim.recorder import Recorder
from sim.simpy_queue import event_value, pending_events, shift_time
from sim.stage_process import PrefillDriver, StageProcess, Token

TIME_TOLERANCE = 1e-12  # relative to the clock: what float sums of the same durations agree to
HISTORY = 16  # boundaries remembered: the longest period looked for


@dataclass(frozen=True)
class Snapshot:
    iteration: int
    now_s: float
    shape: tuple[Any, ...]  # the discrete state: who waits where, with which tokens, in which order
    times_s: tuple[float, ...]  # the continuous state: times from now, in the order of ``shape``
    counters: tuple[float, ...]  # the recorder's tallies (what a skip multiplies)

    def repeats(self, earlier: Snapshot) -> bool:
        if self.shape != earlier.shape:
            return False
        tolerance = TIME_TOLERANCE * max(self.now_s, 1e-9)
        return all(abs(a - b) <= tolerance for a, b in zip(self.times_s, earlier.times_s, strict=True))


class SteadyState:
    """Watches the boundaries of one simulation and skips repeating periods (see the module docstring)."""

    def __init__(self, env: simpy.Environment, fabric: Fabric, recorder: Recorder, limits: tuple[int, int, int],
                 enabled: bool) -> None:
        self.env, self.fabric, self.recorder = env, fabric, recorder
        self.warmup, self.first_free, self.iterations = limits  # first_free: the first iteration after the traced
        self.enabled = enabled
        self.stages: list[StageProcess] = []
        self.drivers: list[PrefillDriver] = []
        self.inboxes: list[simpy.Store] = []
        self.names: dict[simpy.Process, str] = {}
        self.history: list[Snapshot] = []
        self.skipped_iterations = 0

    def attach(self, stages: list[StageProcess], drivers: list[PrefillDriver], inboxes: list[simpy.Store]) -> None:
        """The processes and inboxes whose state the snapshots hold."""
        self.stages, self.drivers, self.inboxes = stages, drivers, inboxes
        self.names = {stage.process: f"stage{index}" for index, stage in enumerate(stages)}
        self.names.update({driver.process: "driver" for driver in drivers})

    def at_boundary(self, iteration: int) -> None:
        if not self.enabled:
            return
        phase_end = self._phase_end(iteration)
        if phase_end is None:
            self.history.clear()
            return
        snapshot = self._snapshot(iteration)
        for earlier in reversed(self.history):
            if snapshot.repeats(earlier):
                periods = (phase_end - iteration) // (iteration - earlier.iteration)
                if periods > 0:
                    self._skip(earlier, snapshot, periods)
                    self.history.clear()
                    return
        self.history.append(snapshot)
        del self.history[:-HISTORY]

    def _phase_end(self, iteration: int) -> int | None:
        """The last boundary a skip from ``iteration`` may reach (tokens sit in ``k`` and ``k + 1``);
        None where no skip may start (the history restarts, so no period spans two phases)."""
        if iteration + 2 < self.warmup:
            return self.warmup - 2
        if iteration >= max(self.warmup, self.first_free):
            return self.iterations - 3
        return None

    def _snapshot(self, iteration: int) -> Snapshot:
        now = self.env.now
        shape: list[Any] = []
        times: list[float] = []
        for stage in self.stages:
            token = None if stage.token is None else (stage.token.microbatch, stage.token.iteration - iteration)
            shape.append(("stage", stage.where, token))
            times.append(stage.allreduce_s)
        for driver in self.drivers:
            shape.append(("driver", driver.next_iteration - iteration, driver.left))
        for index, inbox in enumerate(self.inboxes):
            shape.append(("inbox", index, tuple((t.microbatch, t.iteration - iteration) for t in inbox.items)))
        for when, event in pending_events(self.env):  # SimPy's order for simultaneous events
            owners = tuple(sorted(self._owner(cb) for cb in event.callbacks or ()))
            value = event_value(event)
            token = (value.microbatch, value.iteration - iteration) if isinstance(value, Token) else None
            shape.append(("event", owners, token))
            times.append(when - now)
        for hop, remaining in self.fabric.busy_after(now):
            shape.append(("link", hop))
            times.append(remaining)
        return Snapshot(iteration, now, tuple(shape), tuple(times), self.recorder.counters())

    def _owner(self, callback: Any) -> str:
        """The process an event resumes (its callback is that process's bound method)."""
        process = getattr(callback, "__self__", None)
        return self.names.get(process, "?") if isinstance(process, simpy.Process) else "?"

    def _skip(self, earlier: Snapshot, now: Snapshot, periods: int) -> None:
        """Move the whole simulation ``periods`` periods of ``now.iteration - earlier.iteration`` ahead."""
        env = self.env
        iterations = periods * (now.iteration - earlier.iteration)
        delta_s = periods * (now.now_s - earlier.now_s)
        shift_time(env, delta_s)
        self.fabric.shift(delta_s)
        self.recorder.advance(periods, [b - a for a, b in zip(earlier.counters, now.counters, strict=True)])
        self.recorder.shift_batches(iterations, delta_s)
        queued = [event_value(event) for _, event in pending_events(env)]
        for token in _live_tokens(self.stages, self.inboxes, queued):
            token.iteration += iterations
        for driver in self.drivers:
            driver.next_iteration += iterations
        self.skipped_iterations += iterations


def _live_tokens(stages: list[StageProcess], inboxes: list[simpy.Store], queued: list[Any]) -> list[Token]:
    """Every token in the simulation (each once): held by a stage, in an inbox, or handed over by an event."""
    found: dict[int, Token] = {}
    for token in [*(s.token for s in stages), *(t for inbox in inboxes for t in inbox.items), *queued]:
        if isinstance(token, Token):
            found[id(token)] = token
    return list(found.values())
