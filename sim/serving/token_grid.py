"""A function of the token count, worked out exactly on a grid and linearly between, where that is
as good as exact: the serving pricer's stage pass at ``T`` tokens, which a long run asks for at
thousands of distinct ``T`` (about a millisecond of cost-model work each).

Grid: every ``T`` up to ``2 * NODES_PER_OCTAVE``; above, ``NODES_PER_OCTAVE`` nodes per doubling (a
cell of ``2**k / NODES_PER_OCTAVE`` tokens for ``2**k <= T < 2**(k+1)``: a relative width of at most
1/16). A cell is used by interpolation only if, at its midpoint, the line between its ends is within
``tolerance`` (relative) of the exact value; otherwise every ``T`` in it is worked out exactly. The
pass is piecewise smooth in ``T`` (roofline maxima, measured corrections linear in log size), so a
cell holds at most one kink, and then the error inside it is at most twice the midpoint's; smooth
cells err at most by their midpoint's. Hence: **every value is exact at a node, and within
2 x tolerance (relative) of exact everywhere** (``tests/sim/test_serving_pricing.py`` checks it
against the exact pass). At ``DEFAULT_TOLERANCE`` that is 1e-4: a tenth of a microsecond on a 1 ms
iteration, far below the cost model's own error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

NODES_PER_OCTAVE = 16
DEFAULT_TOLERANCE = 5e-5

Values = tuple[float, ...]


def grid_cell(tokens: int) -> tuple[int, int]:
    """The grid cell ``[low, high]`` that holds ``tokens`` (``low == high == tokens`` below the grid)."""
    if tokens <= 2 * NODES_PER_OCTAVE:
        return tokens, tokens
    step = (1 << (tokens.bit_length() - 1)) // NODES_PER_OCTAVE
    low = tokens - tokens % step
    return low, low + step


@dataclass
class GridCurve:
    """``exact(T)`` (a tuple of floats) by interpolation on the token grid where it is safe (module docstring)."""

    exact: Callable[[int], Values]
    tolerance: float = DEFAULT_TOLERANCE
    _nodes: dict[int, Values] = field(default_factory=dict)
    _linear: dict[int, bool] = field(default_factory=dict)  # cell (by its low end) -> interpolation is safe

    def __call__(self, tokens: int) -> Values:
        low, high = grid_cell(tokens)
        if tokens == low:
            return self._node(tokens)
        safe = self._linear.get(low)
        if safe is None:
            safe = self._linear[low] = self._check(low, high)
        if not safe:
            return self._node(tokens)
        return _between(self._node(low), self._node(high), (tokens - low) / (high - low))

    def _node(self, tokens: int) -> Values:
        known = self._nodes.get(tokens)
        if known is None:
            known = self._nodes[tokens] = self.exact(tokens)
        return known

    def _check(self, low: int, high: int) -> bool:
        middle = (low + high) // 2
        guess = _between(self._node(low), self._node(high), (middle - low) / (high - low))
        return all(abs(g - e) <= self.tolerance * abs(e) for g, e in zip(guess, self._node(middle), strict=True))


def _between(low: Values, high: Values, fraction: float) -> Values:
    return tuple(a + (b - a) * fraction for a, b in zip(low, high, strict=True))
