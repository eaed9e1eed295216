"""What a fast run keeps of its outcome, at two levels of detail, as a ``ServingRun``:

* ``trace``: what ``serving.driver.run_serving`` keeps: every request's record, every iteration's
  ``IterationRecord`` with its plan (O(requests) per iteration to build), every state sample;
* ``records``: every request's record and every state sample as the reference keeps them, and the
  iterations as columns (``serving.iteration_log``), not plans.

(The summary level, for runs too large for per-token times, is ``serving/fast/summary.py``.)
"""

from __future__ import annotations

from serving.driver import IterationRecord, ServingRun
from serving.fast.replica import FastReplica, Launched
from serving.fast.state import GapSink, LiveRequest
from serving.iteration_log import IterationLogBuilder
from serving.occupancy import StateSample
from serving.requests import RequestRecord, RequestStatus

DETAILS = ("trace", "records")


class RunRecorder:
    """Collects a fast run at ``detail`` ``trace`` or ``records`` into a ``ServingRun``."""

    gaps: GapSink | None = None

    def __init__(self, detail: str, kv_blocks_total: int) -> None:
        self.trace = detail == "trace"
        self._kv_blocks_total = kv_blocks_total
        self._records: list[RequestRecord] = []
        self._iterations: list[IterationRecord] = []
        self._log = None if self.trace else IterationLogBuilder()
        self._samples: list[StateSample] = []

    def finished(self, request: LiveRequest, finish_s: float, replica: int) -> None:
        self._records.append(RequestRecord(
            request_id=request.request_id, arrival_s=request.arrival_s, prompt_tokens=request.prompt_tokens,
            output_tokens=request.output_tokens, status=RequestStatus.FINISHED,
            first_scheduled_s=request.first_scheduled_s, token_times_s=request.token_times_s(), finish_s=finish_s,
            preemptions=request.preemptions, replica=replica))

    def rejected(self, request: LiveRequest, reason: str, replica: int) -> None:
        self._records.append(RequestRecord(
            request_id=request.request_id, arrival_s=request.arrival_s, prompt_tokens=request.prompt_tokens,
            output_tokens=request.output_tokens, status=RequestStatus.REJECTED, first_scheduled_s=None,
            token_times_s=(), finish_s=None, preemptions=0, replica=replica, rejected_because=reason))

    def iteration(self, replica: FastReplica, launched: Launched, start_s: float, end_s: float,
                  duration_s: float) -> None:
        if self._log is not None:
            self._log.add(replica.replica, launched.iteration, launched.shape, len(launched.preempted_ids),
                          replica.num_waiting, replica.num_running, replica.kv_blocks_used, start_s, end_s, duration_s)
            return
        assert launched.plan is not None  # a tracing replica builds every plan
        self._iterations.append(IterationRecord(
            replica=replica.replica, plan=launched.plan, start_s=start_s, end_s=end_s, duration_s=duration_s,
            num_waiting=replica.num_waiting, num_running=replica.num_running, kv_blocks_used=replica.kv_blocks_used))

    def sample(self, time_s: float, num_waiting: int, num_running: int, kv_blocks_used: int) -> None:
        self._samples.append(StateSample(time_s=time_s, num_waiting=num_waiting, num_running=num_running,
                                         kv_blocks_used=kv_blocks_used, kv_blocks_total=self._kv_blocks_total))

    def run(self, replicas: int, pipeline_depth: int) -> ServingRun:
        return ServingRun(records=tuple(sorted(self._records, key=_request_id)), iterations=tuple(self._iterations),
                          samples=tuple(self._samples), replicas=replicas, pipeline_depth=pipeline_depth,
                          iteration_log=None if self._log is None else self._log.build())


def _request_id(record: RequestRecord) -> int:
    return record.request_id
