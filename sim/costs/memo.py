"""The one memo of the cost functions: answers already worked out under one cost model, keyed by
value, so every layer, stage and context length that asks the same question again gets the same
answer without the work.

One :class:`PriceMemo` belongs to one :class:`~sim.costs.model.CostModel` (the memo's keys leave
the cost model out): a simulation's pass cache, or one search's stage tables, make one and share
it. The cost model itself is frozen and holds no memo. Values are typed where they are used
(this module imports no cost module, so nothing here can form a cycle with them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    # measured / roofline tables by (op kind, dtype bytes), and the scale near a shape by (kind, dtype, query)
    tables: dict[tuple[str, int], Any] = field(default_factory=dict)
    scales: dict[tuple[str, int, tuple[int, ...]], float] = field(default_factory=dict)
