"""One iteration's batch as plain data: what the scheduler hands the model runner (simulated or
real) and what the cost model prices. vLLM's ``SchedulerOutput``, reduced to what timing needs."""

from __future__ import annotations

from dataclasses import dataclass

PREFILL = "prefill"
DECODE = "decode"


@dataclass(frozen=True)
class PlanItem:
    """One request's share of an iteration.

    ``kind`` is ``decode`` when the request processes just its latest output token against KV it
    already holds, ``prefill`` otherwise (a prompt chunk, or a preempted request's re-prefill of
    prompt plus generated tokens). ``context_tokens`` is what attention reads: tokens computed before
    this iteration plus ``new_tokens``. ``emits_token``: the iteration closes the request's gap, so
    it samples one output token (every decode, and the last chunk of a prefill).
    """

    request_id: int
    kind: str
    new_tokens: int
    context_tokens: int
    emits_token: bool


@dataclass(frozen=True)
class IterationPlan:
    """The next iteration of one replica: its items in scheduling order, at ``scheduled_s``.

    ``padded_tokens`` is what the GPU processes: ``num_tokens``, or for a decode-only iteration
    that fits a captured CUDA graph, the graph's batch size (the smallest bucket >= the number of
    sequences; ``cuda_graph`` True). ``preempted_ids``: requests that lost their KV while this plan
    was made (they are back in the waiting queue, not in ``items``).
    """

    iteration: int
    scheduled_s: float
    items: tuple[PlanItem, ...]
    padded_tokens: int
    cuda_graph: bool
    preempted_ids: tuple[int, ...] = ()

    @property
    def num_seqs(self) -> int:
        return len(self.items)

    @property
    def num_tokens(self) -> int:
        """New tokens scheduled (what the token budget bounds)."""
        return sum(item.new_tokens for item in self.items)

    @property
    def prefill_tokens(self) -> int:
        return sum(item.new_tokens for item in self.items if item.kind == PREFILL)

    @property
    def decode_tokens(self) -> int:
        return sum(item.new_tokens for item in self.items if item.kind == DECODE)

    @property
    def decode_only(self) -> bool:
        return bool(self.items) and all(item.kind == DECODE for item in self.items)

    @property
    def request_ids(self) -> tuple[int, ...]:
        return tuple(item.request_id for item in self.items)


def graph_padding(num_seqs: int, decode_only: bool, cuda_graph_sizes: tuple[int, ...]) -> int | None:
    """The captured batch size a decode-only iteration of ``num_seqs`` sequences is padded to (the
    smallest bucket >= num_seqs), or None: mixed iterations and batches above the largest bucket run
    eagerly, unpadded (vLLM's FULL graphs for uniform decode)."""
    if not decode_only:
        return None
    return next((size for size in cuda_graph_sizes if size >= num_seqs), None)
