"""Request sources: what a discrete-event driver asks for requests.

An open-loop source knows every request up front (``initial_requests``, sorted by arrival). A
closed-loop source starts one request per user and makes a user's next request when the driver
reports the previous one done (``after_done``). Both come from ``request_source(workload)``.

One seed fixes everything: it is split (``numpy.random.SeedSequence.spawn``) into independent
streams for arrival gaps, prompt lengths and output lengths, so changing the arrival process does not
change the lengths, and the k-th request's lengths do not depend on when a closed loop issues it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from serving.arrivals import ClosedLoopArrivals, TraceArrivals, arrival_times_s
from serving.lengths import LengthSpec, TraceLengths
from serving.requests import RequestSpec
from serving.workload import FIELD, ServingWorkload
from topology.errors import LayerwiseError

_BLOCK = 1024  # lengths drawn this many at a time (a closed loop draws them as it issues requests)


class RequestSource(Protocol):
    """What the driver needs from a workload."""

    def initial_requests(self) -> tuple[RequestSpec, ...]:
        """The requests known at the start, sorted by arrival (all of them for an open loop)."""
        ...

    def after_done(self, request_id: int, done_s: float) -> RequestSpec | None:
        """Told that a request finished or was rejected at ``done_s``: a new request, or None."""
        ...


@dataclass(frozen=True)
class OpenLoopSource:
    requests: tuple[RequestSpec, ...]

    def initial_requests(self) -> tuple[RequestSpec, ...]:
        return self.requests

    def after_done(self, request_id: int, done_s: float) -> RequestSpec | None:
        return None


class _Lengths:
    """The k-th request's (prompt, output) lengths, the same whatever order requests are issued in."""

    def __init__(self, workload: ServingWorkload, prompt_rng: np.random.Generator, output_rng: np.random.Generator):
        self._streams = [_Column(workload.prompt_tokens, prompt_rng, workload, "prompt_tokens"),
                         _Column(workload.output_tokens, output_rng, workload, "output_tokens")]

    def take(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The lengths of the next ``count`` requests."""
        prompt, output = (stream.take(count) for stream in self._streams)
        return prompt, output


class _Column:
    def __init__(self, spec: LengthSpec, rng: np.random.Generator, workload: ServingWorkload, key: str):
        self._spec, self._rng, self._key = spec, rng, key
        self._buffer = np.empty(0, dtype=np.int64)
        self._used = 0
        if isinstance(spec, TraceLengths):
            assert workload.trace is not None  # ServingWorkload refuses a 'trace' kind without a trace
            self._buffer = np.asarray(getattr(workload.trace, key), dtype=np.int64)

    def take(self, count: int) -> np.ndarray:
        end = self._used + count
        if isinstance(self._spec, TraceLengths):
            if end > len(self._buffer):
                raise LayerwiseError(f"{FIELD}.{self._key}", f"request {end} asks for trace row {end} of "
                                     f"{len(self._buffer)}: the trace has too few rows for this many requests")
        else:
            while end > len(self._buffer):
                fresh = self._spec.sample(self._rng, _BLOCK)
                self._buffer = np.concatenate([self._buffer, fresh])
        values = self._buffer[self._used:end]
        self._used = end
        return values


class ClosedLoopSource:
    """``users`` users, each with one request in the system: all start at t = 0, and a user's next
    request arrives ``think_time_s`` after its previous one is done. Stops issuing after
    ``num_requests`` requests, or once an arrival would fall after ``duration_s``. Stateful: build
    one per run (``request_source``)."""

    def __init__(self, workload: ServingWorkload, lengths: _Lengths):
        assert isinstance(workload.arrivals, ClosedLoopArrivals)
        self._arrivals = workload.arrivals
        self._limit = workload.num_requests
        self._duration_s = workload.duration_s
        self._lengths = lengths
        self._issued = 0
        self._user_of: dict[int, int] = {}

    def initial_requests(self) -> tuple[RequestSpec, ...]:
        first = self._arrivals.users if self._limit is None else min(self._arrivals.users, self._limit)
        return tuple(request for user in range(first) if (request := self._issue(user, 0.0)) is not None)

    def after_done(self, request_id: int, done_s: float) -> RequestSpec | None:
        user = self._user_of.pop(request_id, None)
        if user is None:
            raise LayerwiseError("request_id", f"{request_id} is not outstanding in this closed loop")
        return self._issue(user, done_s + self._arrivals.think_time_s)

    def user_of(self, request_id: int) -> int | None:
        """The user whose request this is, while it is outstanding."""
        return self._user_of.get(request_id)

    def _issue(self, user: int, arrival_s: float) -> RequestSpec | None:
        if self._limit is not None and self._issued >= self._limit:
            return None
        if self._duration_s is not None and arrival_s > self._duration_s:
            return None
        prompt, output = self._lengths.take(1)
        request = RequestSpec(self._issued, arrival_s, int(prompt[0]), int(output[0]))
        self._user_of[request.request_id] = user
        self._issued += 1
        return request


def open_loop_requests(workload: ServingWorkload) -> tuple[RequestSpec, ...]:
    """Every request of an open-loop workload, sorted by arrival, ids 0, 1, ... in arrival order."""
    if isinstance(workload.arrivals, ClosedLoopArrivals):
        raise LayerwiseError(f"{FIELD}.arrivals.kind", "closed_loop has no fixed request list; use request_source")
    arrival_rng, prompt_rng, output_rng = _generators(workload.seed)
    if isinstance(workload.arrivals, TraceArrivals):
        assert workload.trace is not None
        times = np.asarray(workload.trace.arrival_s) / workload.arrivals.speedup
        if workload.num_requests is not None:
            times = times[:workload.num_requests]
        elif workload.duration_s is not None:
            times = times[times <= workload.duration_s]
    else:
        times = arrival_times_s(workload.arrivals, arrival_rng, workload.num_requests, workload.duration_s)
    if len(times) == 0:
        raise LayerwiseError(f"{FIELD}.duration_s", f"no request arrives within {workload.duration_s!r} s")
    prompt, output = _Lengths(workload, prompt_rng, output_rng).take(len(times))
    return tuple(RequestSpec(index, float(time_s), int(p), int(o))
                 for index, (time_s, p, o) in enumerate(zip(times, prompt, output, strict=True)))


def request_source(workload: ServingWorkload) -> RequestSource:
    """A fresh source for one run of ``workload`` (a closed loop's state starts over each call)."""
    if isinstance(workload.arrivals, ClosedLoopArrivals):
        _, prompt_rng, output_rng = _generators(workload.seed)
        return ClosedLoopSource(workload, _Lengths(workload, prompt_rng, output_rng))
    return OpenLoopSource(open_loop_requests(workload))


def _generators(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Three independent streams from one seed: arrival gaps, prompt lengths, output lengths."""
    arrival, prompt, output = (np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3))
    return arrival, prompt, output
