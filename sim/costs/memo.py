"""The one memo of the cost functions: answers already worked out under one cost model, keyed by
value, so every layer, stage and context length that asks the same question again gets the same
answer without the work; and (:func:`built`) the pieces of cost models already built, by value.

One :class:`PriceMemo` belongs to one :class:`~sim.costs.model.CostModel` (the memo's keys leave
the cost model out): a simulation's pass cache, or one search's stage tables, make one and share
it. The cost model itself is frozen and holds no memo. Values are typed where they are used
(this module imports no cost module, so nothing here can form a cycle with them).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from topology.ops import Op

OpKey = tuple[object, ...]  # an operator's shape: everything its price depends on but its name and layer


def op_key(op: Op) -> OpKey:
    return (op.kind, op.dtype_bytes, op.in_features, op.out_features, op.width, op.heads, op.kv_heads, op.head_dim,
            op.gated, op.terms)


@dataclass
class PriceMemo:
    """Every table keyed by value (shapes, byte counts, device names), never by object identity."""

    # OpCost by (op_key, what it reads: the token count, or the whole TokenShape for attention, L2 hit fraction)
    ops: dict[tuple[object, ...], Any] = field(default_factory=dict)
    # CommCost of an all-reduce by (payload bytes, devices): never depends on the context
    allreduces: dict[tuple[int, tuple[str, ...]], Any] = field(default_factory=dict)
    # a compute run without attention (a Segment) by (its ops' keys, their names if named, tokens, hit fraction):
    # the same at every context length
    runs: dict[tuple[object, ...], Any] = field(default_factory=dict)
    # activation bytes of a stage's operators by (model, layer count, TP degree, tokens): layers are alike
    activations: dict[tuple[object, ...], int] = field(default_factory=dict)
    # the measured correction near a shape (a Correction) by (op kind, decode or not, log shape, log size)
    scales: dict[tuple[object, ...], Any] = field(default_factory=dict)


T = TypeVar("T")
BUILT_KEPT = 32  # cost-model pieces kept across builds (fitted bases, correction tables)
_BUILT: dict[Hashable, Any] = {}


def built(key: Hashable, make: Callable[[], T]) -> T:
    """A piece of a cost model (a base fitted to a profile's points, its correction tables), worked
    out once per value of ``key`` (the points and the parameters it reads): a validation builds a
    cost model for every run it prices, under few distinct profiles. The oldest piece goes first."""
    found = _BUILT.get(key)
    if found is None:
        if len(_BUILT) >= BUILT_KEPT:
            _BUILT.pop(next(iter(_BUILT)))
        found = _BUILT[key] = make()
    return found  # type: ignore[no-any-return]
