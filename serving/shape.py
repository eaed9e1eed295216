"""What an iteration's duration depends on, without its request ids: ``IterationShape``.

A cost model prices an iteration by its token count (padded to a CUDA graph for a decode-only
iteration), its decodes as one group (how many, the sum of their contexts) and its prefill chunks
(new tokens and context each, in scheduling order). ``shape_of(plan)`` reads it off an
``IterationPlan``; the fast driver (``serving.fast``) builds it from aggregate counts without making
one ``PlanItem`` per request. A time function of the shape therefore prices both paths alike.
"""

from __future__ import annotations

from typing import NamedTuple

from serving.batch import DECODE, IterationPlan


class IterationShape(NamedTuple):
    """One iteration as a cost model sees it (an immutable value; a named tuple because the fast driver
    makes one per iteration and a tuple is the cheapest immutable record to build).

    num_tokens: new tokens scheduled (prefill and decode).
    padded_tokens: what the GPU processes (``num_tokens``, or the CUDA-graph batch size).
    cuda_graph: a decode-only iteration replayed from a captured graph.
    num_decodes: items of kind decode (one new token each, over the KV already held).
    decode_context_tokens: the sum of the decodes' contexts (tokens attention reads, the new one included).
    chunks: ``(new_tokens, context_tokens)`` of every prefill item, in scheduling order.
    """

    num_tokens: int
    padded_tokens: int
    cuda_graph: bool
    num_decodes: int
    decode_context_tokens: int
    chunks: tuple[tuple[int, int], ...]

    @property
    def num_seqs(self) -> int:
        return self.num_decodes + len(self.chunks)


def shape_of(plan: IterationPlan) -> IterationShape:
    """The shape of a scheduled plan (decodes summed, prefill chunks in item order)."""
    decodes = [item.context_tokens for item in plan.items if item.kind == DECODE]
    chunks = tuple((item.new_tokens, item.context_tokens) for item in plan.items if item.kind != DECODE)
    return IterationShape(num_tokens=plan.num_tokens, padded_tokens=plan.padded_tokens, cuda_graph=plan.cuda_graph,
                          num_decodes=len(decodes), decode_context_tokens=sum(decodes), chunks=chunks)
