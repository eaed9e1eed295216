"""A request and its life: what the client asks (``RequestSpec``), the state the scheduler keeps
while serving it (``RequestState``, the only mutable thing here) and what is left when it is done
(``RequestRecord``, everything the latency metrics read).

Token accounting follows vLLM V1 (``vllm/v1/request.py``): a request *knows* ``prompt + emitted``
tokens; ``computed_tokens`` of them have their KV written. Prefill and decode are not phases of
the request but of one iteration's share of it: the scheduler closes the gap
``known - computed``, and an iteration that closes it samples one new output token. The last output
token is sampled but never fed back, so a request holds KV for at most
``prompt + output - 1`` tokens (``RequestSpec.max_kv_tokens``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from itertools import pairwise

from serving.fields import non_negative_float, non_negative_int, positive_int


class RequestStatus(enum.Enum):
    """Where a request is: queued, in the running set, queued again after losing its KV (recompute),
    done, or refused at arrival because it can never fit."""

    WAITING = "waiting"
    RUNNING = "running"
    PREEMPTED = "preempted"
    FINISHED = "finished"
    REJECTED = "rejected"


@dataclass(frozen=True)
class RequestSpec:
    """One request as the client sends it: when, how long its prompt is, how many tokens it wants.

    ``output_tokens`` is the exact number generated (the benchmark's ``ignore_eos``): a simulator has
    no text to stop on.
    """

    request_id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        non_negative_int("request.request_id", self.request_id)
        non_negative_float(f"request {self.request_id}.arrival_s", self.arrival_s)
        positive_int(f"request {self.request_id}.prompt_tokens", self.prompt_tokens)
        positive_int(f"request {self.request_id}.output_tokens", self.output_tokens)

    @property
    def total_tokens(self) -> int:
        """Prompt plus output: what ``max_model_len`` must hold."""
        return self.prompt_tokens + self.output_tokens

    @property
    def max_kv_tokens(self) -> int:
        """The most tokens whose KV the request ever holds (its last output token is never fed back)."""
        return self.prompt_tokens + self.output_tokens - 1


@dataclass(frozen=True)
class RequestRecord:
    """A request when it has left the system: finished (every timestamp set) or rejected at arrival
    (``first_scheduled_s``, ``finish_s`` None, no tokens, ``rejected_because`` says why). ``replica``
    is the replica that served it."""

    request_id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    status: RequestStatus
    first_scheduled_s: float | None
    token_times_s: tuple[float, ...]
    finish_s: float | None
    preemptions: int
    replica: int = 0
    rejected_because: str = ""

    @property
    def finished(self) -> bool:
        return self.status is RequestStatus.FINISHED

    @property
    def first_token_s(self) -> float | None:
        return self.token_times_s[0] if self.token_times_s else None

    @property
    def ttft_s(self) -> float | None:
        """Time to first token: first token − arrival (None if rejected)."""
        first = self.first_token_s
        return None if first is None else first - self.arrival_s

    @property
    def e2e_s(self) -> float | None:
        """End-to-end latency: last token − arrival (None if rejected)."""
        return None if self.finish_s is None else self.finish_s - self.arrival_s

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first: (E2E − TTFT) / (output − 1); None for one-token
        requests (vLLM's benchmark leaves them out of TPOT) and for rejected ones."""
        if self.finish_s is None or self.output_tokens < 2 or not self.token_times_s:
            return None
        return (self.finish_s - self.token_times_s[0]) / (self.output_tokens - 1)

    @property
    def itl_s(self) -> tuple[float, ...]:
        """Inter-token latencies: the gaps between consecutive tokens (output − 1 of them)."""
        times = self.token_times_s
        return tuple(later - earlier for earlier, later in pairwise(times))

    @property
    def queueing_s(self) -> float | None:
        """Queueing delay: first scheduled − arrival (vidur's ``request_scheduling_delay``)."""
        return None if self.first_scheduled_s is None else self.first_scheduled_s - self.arrival_s


@dataclass
class RequestState:
    """The scheduler's live view of one request (owned by one ``Scheduler``; nothing else writes it).

    ``computed_tokens`` advances when an iteration is *scheduled* (as in vLLM), ``emitted_tokens``
    when it *completes*; ``in_flight`` is true between the two, and such a request is not scheduled
    again. Preemption by recompute zeroes ``computed_tokens`` and keeps what was emitted.
    """

    spec: RequestSpec
    status: RequestStatus = RequestStatus.WAITING
    computed_tokens: int = 0
    emitted_tokens: int = 0
    in_flight: bool = False
    first_scheduled_s: float | None = None
    token_times_s: list[float] = field(default_factory=list)
    finish_s: float | None = None
    preemptions: int = 0

    @property
    def request_id(self) -> int:
        return self.spec.request_id

    @property
    def known_tokens(self) -> int:
        """Tokens that exist for this request now: the prompt and every emitted token (vLLM's ``num_tokens``)."""
        return self.spec.prompt_tokens + self.emitted_tokens

    @property
    def remaining_tokens(self) -> int:
        """Known tokens whose KV is not computed yet: what the next iteration would have to process."""
        return self.known_tokens - self.computed_tokens

    def record(self, replica: int = 0) -> RequestRecord:
        spec = self.spec
        return RequestRecord(
            request_id=spec.request_id, arrival_s=spec.arrival_s, prompt_tokens=spec.prompt_tokens,
            output_tokens=spec.output_tokens, status=self.status, first_scheduled_s=self.first_scheduled_s,
            token_times_s=tuple(self.token_times_s), finish_s=self.finish_s, preemptions=self.preemptions,
            replica=replica,
        )
