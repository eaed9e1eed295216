"""Every request of a run as columns, and the latency metrics from them: what a summary run keeps
(``serving.fast.summary``) instead of a ``RequestRecord`` with every token time per request.

Row ``i`` is the request with the ``i``-th smallest id (the order of ``ServingRun.records``). Times are
seconds, NaN where a rejected request has none. A metric's values are those ``serving.latency``
works out from the records, in the same order, by the same float operations, so their summaries are
the same numbers; what a table cannot give is the pooled inter-token gaps (a summary counts them,
``serving.fast.summary.GapCounts``) and a request's own gap percentile, which the run works out when
an ITL SLO needs it (``own_itl_s``, by percentile).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from serving.requests import RequestRecord, RequestStatus


@dataclass(frozen=True)
class RequestTable:
    """Columns of equal length, by request id (see the module docstring)."""

    request_id: np.ndarray = field(compare=False)  # int64
    arrival_s: np.ndarray = field(compare=False)
    prompt_tokens: np.ndarray = field(compare=False)  # int64
    output_tokens: np.ndarray = field(compare=False)  # int64
    finished: np.ndarray = field(compare=False)  # bool: finished, else rejected
    first_scheduled_s: np.ndarray = field(compare=False)
    first_token_s: np.ndarray = field(compare=False)
    finish_s: np.ndarray = field(compare=False)
    preemptions: np.ndarray = field(compare=False)  # int64
    replica: np.ndarray = field(compare=False)  # int64
    own_itl_s: dict[float, np.ndarray] = field(default_factory=dict, compare=False)  # percentile -> NaN if < 2 tokens

    def __len__(self) -> int:
        return len(self.request_id)

    def values_s(self, metric: str) -> np.ndarray:
        """``serving.latency.metric_values_s`` for ttft, tpot, e2e or queueing: finished requests, by id."""
        done = self.finished
        if metric == "tpot":
            several = done & (self.output_tokens >= 2)
            after_first = self.finish_s[several] - self.first_token_s[several]
            return np.asarray(after_first / (self.output_tokens[several] - 1), dtype=np.float64)
        ends = {"ttft": self.first_token_s, "e2e": self.finish_s, "queueing": self.first_scheduled_s}
        if metric not in ends:
            raise ValueError(f"no per-request column for metric {metric!r}")
        return np.asarray(ends[metric][done] - self.arrival_s[done], dtype=np.float64)


def request_table(records: Sequence[RequestRecord], itl_percents: Sequence[float] = ()) -> RequestTable:
    """The table of ``records`` (sorted by id, as a ``ServingRun`` holds them), each request's own
    ITL percentiles included for ``itl_percents``."""
    ordered = sorted(records, key=_request_id)
    nan = float("nan")
    done = [record.status is RequestStatus.FINISHED for record in ordered]

    def column(values: list[float | None]) -> np.ndarray:
        return np.asarray([nan if value is None else value for value in values], dtype=np.float64)

    own: dict[float, np.ndarray] = {}
    for percent in itl_percents:
        own[percent] = np.asarray([own_itl_percentile_s(record.token_times_s, percent) for record in ordered],
                                  dtype=np.float64)
    return RequestTable(
        request_id=np.asarray([r.request_id for r in ordered], dtype=np.int64),
        arrival_s=np.asarray([r.arrival_s for r in ordered], dtype=np.float64),
        prompt_tokens=np.asarray([r.prompt_tokens for r in ordered], dtype=np.int64),
        output_tokens=np.asarray([r.output_tokens for r in ordered], dtype=np.int64),
        finished=np.asarray(done, dtype=bool),
        first_scheduled_s=column([r.first_scheduled_s for r in ordered]),
        first_token_s=column([r.first_token_s for r in ordered]),
        finish_s=column([r.finish_s for r in ordered]),
        preemptions=np.asarray([r.preemptions for r in ordered], dtype=np.int64),
        replica=np.asarray([r.replica for r in ordered], dtype=np.int64),
        own_itl_s=own,
    )


def own_itl_percentile_s(token_times_s: Sequence[float], percent: float) -> float:
    """One request's ``percent``-th percentile of its own inter-token gaps (NaN: fewer than two tokens)."""
    if len(token_times_s) < 2:
        return float("nan")
    return float(np.percentile(np.diff(np.asarray(token_times_s, dtype=np.float64)), percent))


def _request_id(record: RequestRecord) -> int:
    return record.request_id
