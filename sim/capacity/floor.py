"""The least time an iteration of n tokens can take on a plan: the floor the capacity bound stands on.

An iteration's time (:class:`sim.serving.iteration_cost.IterationPricer`) depends on its token count
and on how its tokens split into decodes and prefill chunks. The floor takes, for n tokens, the
cheapest of the compositions that are cheapest in the cost model:

* n decodes at the shortest context (16 tokens: the pricer rounds contexts up to a KV block), eager;
* the same as a captured CUDA graph of the padded size (decode-only iterations, n within the largest
  captured size);
* one prefill chunk of n tokens with no prefix.

Assumptions, checked by ``tests/capacity/test_capacity_bound.py`` on random mixes of decodes and
chunks at random contexts: no composition of n tokens is cheaper than the cheapest of these, and an
iteration of more tokens is not cheaper than one of fewer (the floor is made non-decreasing from the
right: ``floor(n_k) = min over j >= k``). It is measured at token counts ``n_k`` a ratio of at most
``FLOOR_RATIO`` apart and holds for every count in ``[n_k, n_{k+1})``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from serving.batch import DECODE, PREFILL, IterationPlan, PlanItem, graph_padding

FLOOR_RATIO = 1.25
SHORTEST_CONTEXT_TOKENS = 16
IterationTime = Callable[[IterationPlan], float]


def floor_token_counts(max_tokens: int, extra: Iterable[int] = ()) -> tuple[int, ...]:
    """1, 2, 3, ... growing by at most ``FLOOR_RATIO`` up to ``max_tokens``, plus ``extra`` (<= max)."""
    counts = {1, max_tokens, *(n for n in extra if 1 <= n <= max_tokens)}
    n = 1
    while n < max_tokens:
        n = min(max_tokens, max(n + 1, math.floor(n * FLOOR_RATIO)))
        counts.add(n)
    return tuple(sorted(counts))


def _iteration(items: tuple[PlanItem, ...], padded: int | None) -> IterationPlan:
    tokens = sum(item.new_tokens for item in items)
    return IterationPlan(iteration=0, scheduled_s=0.0, items=items,
                         padded_tokens=tokens if padded is None else padded, cuda_graph=padded is not None)


def _decodes(count: int) -> tuple[PlanItem, ...]:
    return tuple(PlanItem(request_id=i, kind=DECODE, new_tokens=1, context_tokens=SHORTEST_CONTEXT_TOKENS,
                          emits_token=True) for i in range(count))


@dataclass(frozen=True)
class IterationFloor:
    """A plan's measured floor: at each token count (ascending) the cheapest eager composition, and
    the time of n decodes replayed as the captured graph they pad to (for each padding measured)."""

    token_counts: tuple[int, ...]
    eager_s: tuple[float, ...]
    graph_s: tuple[tuple[int, int, float], ...]  # (n decodes, captured size they are padded to, time)

    def step_values_s(self, max_tokens: int, graph_sizes: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """The floor of one scheduler setting: token counts n_k <= ``max_tokens`` and the floor valid
        on [n_k, n_{k+1}) (the last one at n = ``max_tokens``), non-decreasing."""
        graphs = {(n, padded): time_s for n, padded, time_s in self.graph_s}
        counts, values = [], []
        for n, eager_s in zip(self.token_counts, self.eager_s, strict=True):
            if n > max_tokens:
                break
            padded = graph_padding(n, True, graph_sizes)
            graph_s = None if padded is None else graphs.get((n, padded))
            best = eager_s if graph_s is None else min(eager_s, graph_s)
            counts.append(n)
            values.append(best)
        for k in range(len(values) - 2, -1, -1):
            values[k] = min(values[k], values[k + 1])
        return tuple(counts), tuple(values)


def measure_floor(price: IterationTime, token_counts: tuple[int, ...], graph_size_lists: Iterable[tuple[int, ...]]
                  ) -> IterationFloor:
    """Price the floor's compositions at ``token_counts`` and the graph sizes the settings pad them to."""
    eager = []
    for n in token_counts:
        decodes = price(_iteration(_decodes(n), None))
        chunk = price(_iteration((PlanItem(request_id=0, kind=PREFILL, new_tokens=n, context_tokens=n,
                                           emits_token=True),), None))
        eager.append(min(decodes, chunk))
    pairs = sorted({(n, padded) for sizes in graph_size_lists for n in token_counts
                    if (padded := graph_padding(n, True, sizes)) is not None})
    graphs = tuple((n, padded, price(_iteration(_decodes(n), padded))) for n, padded in pairs)
    return IterationFloor(tuple(token_counts), tuple(eager), graphs)
