"""Replay: feed a measured run's iteration times back into the scheduler and the driver, with the
same requests and settings, and check that every iteration's batch comes out the same.

A measured run (``layerwise run`` on a serving experiment) calls the one scheduler at the instants
the driver would: iteration ends (its own clock's stamps), arrivals, and for a pipeline the moment
its first stage is free. It records each iteration's time per stage as the driver defines them
(``serving.driver.advance_stages`` turns them into the same instants, to the last bit). So given
those times, :func:`replay_record` must reproduce the run: the same items (request, kind, new and
context tokens, whether a token is sampled), the same preemptions and graph padding, at the same
instants. A difference means the executor did not serve what the scheduler planned, or called it
at other moments; either breaks the link between the simulator's model and the measurement.

    python -m serving.replay RUN.json      # prints the verdict; exit 0 identical, 1 not, 2 bad input

Pure (no torch, no SimPy), like the rest of ``serving``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from serving.batch import IterationPlan
from serving.driver import IterationRecord, ServingRun, run_serving
from serving.requests import RequestSpec
from serving.run_record import ServingRunRecord, serving_record_from_dict
from serving.setup import serving_setup_from_dict
from serving.sources import OpenLoopSource, RequestSource, request_source
from topology.errors import LayerwiseError


@dataclass(frozen=True)
class ReplayComparison:
    """How a replay compares with the run it replays: iterations compared, the first difference
    (None: every iteration's batch is the same, and every request's token times), and the largest
    difference between the two runs' iteration start and end times (0.0 when exact)."""

    iterations: int
    mismatch: str | None
    max_time_difference_s: float

    @property
    def identical(self) -> bool:
        return self.mismatch is None

    def describe(self) -> str:
        if self.mismatch is None:
            return (f"replay: all {self.iterations} iterations have the same batch "
                    f"(largest time difference {self.max_time_difference_s:.3g} s)")
        return f"replay: differs after {self.iterations} identical iterations: {self.mismatch}"


class _Diverged(Exception):
    """The replay scheduled an iteration the run did not have (raised out of the driver): the
    number of iterations that agreed before it, and what differs."""

    def __init__(self, agreed: int, message: str) -> None:
        super().__init__(message)
        self.agreed = agreed


def composition(plan: IterationPlan) -> tuple[object, ...]:
    """What an iteration's batch is: its number, items, preemptions and graph padding."""
    items = tuple((i.request_id, i.kind, i.new_tokens, i.context_tokens, i.emits_token) for i in plan.items)
    return plan.iteration, items, plan.preempted_ids, plan.padded_tokens, plan.cuda_graph


def replay_source(record: ServingRunRecord, base_dir: str = ".") -> RequestSource:
    """The requests of the recorded run: a closed loop's workload again (its arrivals follow the
    run's own completions), else the recorded requests as an open loop."""
    workload = record.experiment.get("workload")
    arrivals = workload.get("arrivals") if isinstance(workload, dict) else None
    if isinstance(arrivals, dict) and arrivals.get("kind") == "closed_loop":
        return request_source(serving_setup_from_dict(record.experiment, base_dir).workload)
    specs = sorted((RequestSpec(r.request_id, r.arrival_s, r.prompt_tokens, r.output_tokens)
                    for r in record.run.records), key=lambda spec: (spec.arrival_s, spec.request_id))
    return OpenLoopSource(tuple(specs))


def replay(record: ServingRunRecord, source: RequestSource | None = None) -> ServingRun:
    """Run the driver with the record's scheduler, pipeline depth, replicas and router, each
    iteration taking the time the record gives it (per stage when recorded so). Raises
    ``_Diverged`` (caught by :func:`replay_record`) at the first iteration the run did not have."""
    recorded = record.run.iterations
    calls = iter(range(len(recorded)))

    def iteration_time_s(plan: IterationPlan) -> float | tuple[float, ...]:
        index = next(calls, None)
        if index is None:
            raise _Diverged(len(recorded), f"the replay schedules iteration {plan.iteration} {_items(plan)} "
                                           f"beyond the run's {len(recorded)} iterations")
        it = recorded[index]
        if composition(plan) != composition(it.plan):
            raise _Diverged(index, f"iteration {index}: the run had {_items(it.plan)}, the replay {_items(plan)}")
        return it.stage_times_s if it.stage_times_s else it.duration_s

    run = record.run
    return run_serving(source or replay_source(record), record.scheduler, iteration_time_s,
                       pipeline_depth=run.pipeline_depth, replicas=run.replicas, router=record.router)


def replay_record(record: ServingRunRecord, source: RequestSource | None = None) -> ReplayComparison:
    """Replay ``record`` and compare: every iteration (replica, batch, instants) and every request."""
    try:
        replayed = replay(record, source)
    except _Diverged as diverged:
        return ReplayComparison(iterations=diverged.agreed, mismatch=str(diverged), max_time_difference_s=float("nan"))
    return compare_runs(record.run, replayed)


def compare_runs(measured: ServingRun, replayed: ServingRun) -> ReplayComparison:
    """Iteration by iteration, then request by request: the first difference and the largest time gap."""
    gap = 0.0
    for index, (ran, again) in enumerate(zip(measured.iterations, replayed.iterations, strict=False)):
        if (ran.replica, composition(ran.plan)) != (again.replica, composition(again.plan)):
            return ReplayComparison(index, f"iteration {index}: the run had {_items(ran.plan)} on replica "
                                           f"{ran.replica}, the replay {_items(again.plan)} on {again.replica}", gap)
        gap = max(gap, _time_gap_s(ran, again))
    count = min(len(measured.iterations), len(replayed.iterations))
    if len(measured.iterations) != len(replayed.iterations):
        return ReplayComparison(count, f"the run has {len(measured.iterations)} iterations, the replay "
                                       f"{len(replayed.iterations)}", gap)
    for ran_request, again_request in zip(measured.records, replayed.records, strict=False):
        if ran_request != again_request:
            return ReplayComparison(count, f"request {ran_request.request_id}: the run recorded {ran_request}, "
                                           f"the replay {again_request}", gap)
    if len(measured.records) != len(replayed.records):
        return ReplayComparison(count, f"the run has {len(measured.records)} requests, the replay "
                                       f"{len(replayed.records)}", gap)
    return ReplayComparison(count, None, gap)


def _time_gap_s(ran: IterationRecord, again: IterationRecord) -> float:
    return max(abs(ran.start_s - again.start_s), abs(ran.end_s - again.end_s),
               abs(ran.plan.scheduled_s - again.plan.scheduled_s))


def _items(plan: IterationPlan) -> str:
    shown = [f"{i.request_id}:{i.kind}:{i.new_tokens}/{i.context_tokens}" for i in plan.items[:6]]
    more = f" +{len(plan.items) - 6}" if len(plan.items) > 6 else ""
    preempted = f" preempting {list(plan.preempted_ids)}" if plan.preempted_ids else ""
    return f"[{', '.join(shown)}{more}]{preempted}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("record", help="a serving run JSON (layerwise-serving-run)")
    args = parser.parse_args(argv)
    try:
        path = Path(args.record)
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LayerwiseError("record", f"{args.record}: cannot read a JSON file ({exc})") from None
        comparison = replay_record(serving_record_from_dict(raw, args.record))
    except LayerwiseError as exc:
        print(f"serving.replay: error: {exc}", file=sys.stderr)
        return 2
    print(comparison.describe())
    return 0 if comparison.identical else 1


if __name__ == "__main__":
    sys.exit(main())
