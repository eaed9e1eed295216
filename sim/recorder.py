"""The simulation's live event log: what stage processes report while the run goes (passes done,
tokens leaving, batches starting), folded into per-stage tallies as it arrives, and the trace
slices of the traced iterations. :mod:`sim.results` turns the finished log into results."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.passes import PASS_TOTALS, PassProgram

TraceSlice = tuple[str, str, str, float, float]  # (device, name, category, start_s, duration_s)


@dataclass
class StageTally:
    """Sums over one stage's measured passes (per device of its TP group)."""

    passes: float = 0.0
    allreduce_s: float = 0.0  # collective time, waiting for busy links included
    send_s: float = 0.0  # point-to-point send time, waiting for busy links included
    totals: list[float] = field(default_factory=lambda: [0.0] * len(PASS_TOTALS))  # PASS_TOTALS of the programs
    allreduce_events: float = 0.0
    allreduce_bytes_sent: float = 0.0

    FIELDS = 5 + len(PASS_TOTALS)

    def vector(self) -> list[float]:
        return [self.passes, self.allreduce_s, self.send_s, self.allreduce_events, self.allreduce_bytes_sent,
                *self.totals]

    def add_vector(self, values: list[float]) -> None:
        self.passes += values[0]
        self.allreduce_s += values[1]
        self.send_s += values[2]
        self.allreduce_events += values[3]
        self.allreduce_bytes_sent += values[4]
        self.totals = [t + v for t, v in zip(self.totals, values[5:], strict=True)]


class Recorder:
    """The simulation's event log, folded into tallies as each record arrives.

    The stages report every finished pass, the last stage every token that leaves, and the prefill
    driver every batch it starts; nothing per event is kept. Only passes of measured iterations
    (``iteration >= warmup``) count toward the tallies; every pass counts toward the traffic.
    """

    def __init__(self, num_stages: int, microbatches: int, warmup: int, iterations: int) -> None:
        self.warmup, self.last = warmup, iterations - 1
        self.tallies = [StageTally() for _ in range(num_stages)]
        self.passes_run = [0.0] * num_stages  # every iteration: what the links carried
        self.events = 0.0  # the events these passes take (steps, sends), as if none were skipped
        self.window_start_s = [0.0] * microbatches  # when each microbatch left iteration warmup - 1
        self.window_end_s = [0.0] * microbatches  # ... and the last iteration
        self.ttft_sum_s = 0.0  # prefill: time from its batch's start to each measured token leaving
        self.ttft_count = 0.0
        self.batch_start_s: dict[int, float] = {}

    def pass_done(self, stage: int, iteration: int, program: PassProgram, allreduce_s: float, send_s: float) -> None:
        self.passes_run[stage] += 1
        self.events += len(program.steps) + (send_s > 0.0)
        if iteration < self.warmup:
            return
        tally = self.tallies[stage]
        tally.passes += 1
        tally.allreduce_s += allreduce_s
        tally.send_s += send_s
        tally.totals = [t + v for t, v in zip(tally.totals, program.totals, strict=True)]
        tally.allreduce_events += program.allreduce_count
        tally.allreduce_bytes_sent += program.allreduce_bytes_sent

    def completed(self, microbatch: int, iteration: int, now_s: float) -> None:
        if iteration == self.warmup - 1:
            self.window_start_s[microbatch] = now_s
        if iteration == self.last:
            self.window_end_s[microbatch] = now_s
        if iteration >= self.warmup and iteration in self.batch_start_s:
            self.ttft_sum_s += now_s - self.batch_start_s[iteration]
            self.ttft_count += 1

    def batch_started(self, iteration: int, now_s: float) -> None:
        self.batch_start_s = {iteration: now_s}  # batches do not overlap

    def counters(self) -> tuple[float, ...]:
        """Every tally as one vector (what the steady state multiplies)."""
        values = [v for tally in self.tallies for v in tally.vector()]
        return (*values, *self.passes_run, self.events, self.ttft_sum_s, self.ttft_count)

    def advance(self, periods: int, growth: list[float]) -> None:
        """Add ``periods`` times ``growth`` (one period's change of :meth:`counters`)."""
        width, k = StageTally.FIELDS, len(self.tallies)
        scaled = [periods * g for g in growth]
        for index, tally in enumerate(self.tallies):
            tally.add_vector(scaled[index * width:(index + 1) * width])
        rest = scaled[k * width:]
        self.passes_run = [p + g for p, g in zip(self.passes_run, rest[:k], strict=True)]
        self.events += rest[k]
        self.ttft_sum_s += rest[k + 1]
        self.ttft_count += rest[k + 2]

    def shift_batches(self, iterations: int, delta_s: float) -> None:
        self.batch_start_s = {it + iterations: t + delta_s for it, t in self.batch_start_s.items()}
