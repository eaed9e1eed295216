"""Token-length distributions for prompts and outputs, each drawn with a generator passed in.

Every draw is an integer >= 1 (a request has at least one prompt and one output token). Kinds,
as an experiment file writes them (``workload.prompt_tokens`` / ``workload.output_tokens``):

* ``{kind: fixed, tokens: 512}``
* ``{kind: uniform, low_tokens: 16, high_tokens: 256}``: integers in [low, high], both included;
* ``{kind: normal, mean_tokens: 256, std_tokens: 100}``: rounded to the nearest integer, then
  clipped to >= 1 (so the realised mean is above ``mean_tokens`` when the clip bites);
* ``{kind: lognormal, median_tokens: 1000, sigma: 0.8}`` or ``{kind: lognormal, mu: 6.9, sigma: 0.8}``:
  ``exp(N(mu, sigma))`` rounded, clipped to >= 1; ``mu`` and ``sigma`` are those of the natural log
  of the length, and ``median_tokens = exp(mu)`` (give one of the two, not both);
* ``{kind: histogram, edges_tokens: [1, 128, 1024, 4096], weights: [0.5, 0.4, 0.1]}``: a bin with
  probability proportional to its weight, then an integer uniform in [edge_i, edge_i+1) (the
  lower edge included, the upper not);
* ``{kind: trace}``: the lengths of the workload's trace, row by row, in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from serving.fields import (
    check_known_keys,
    finite_float,
    non_negative_float,
    one_of,
    positive_float,
    positive_int,
    required,
)
from topology.errors import LayerwiseError

LENGTH_KINDS = ("fixed", "uniform", "normal", "lognormal", "histogram", "trace")


@dataclass(frozen=True)
class FixedLengths:
    tokens: int

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return np.full(count, self.tokens, dtype=np.int64)


@dataclass(frozen=True)
class UniformLengths:
    low_tokens: int
    high_tokens: int

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return rng.integers(self.low_tokens, self.high_tokens, size=count, endpoint=True, dtype=np.int64)


@dataclass(frozen=True)
class NormalLengths:
    mean_tokens: float
    std_tokens: float

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return _rounded_at_least_one(rng.normal(self.mean_tokens, self.std_tokens, size=count))


@dataclass(frozen=True)
class LognormalLengths:
    """``exp(N(mu, sigma))``: ``mu`` and ``sigma`` of the natural log of the length (median = e^mu)."""

    mu: float
    sigma: float

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        return _rounded_at_least_one(rng.lognormal(self.mu, self.sigma, size=count))


@dataclass(frozen=True)
class HistogramLengths:
    """An empirical histogram: ``len(edges_tokens) == len(weights) + 1``, edges increasing integers >= 1."""

    edges_tokens: tuple[int, ...]
    weights: tuple[float, ...]

    def sample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        probabilities = np.asarray(self.weights) / sum(self.weights)
        bins = rng.choice(len(self.weights), size=count, p=probabilities)
        edges = np.asarray(self.edges_tokens, dtype=np.int64)
        return rng.integers(edges[bins], edges[bins + 1], dtype=np.int64)  # [low, high) per draw


@dataclass(frozen=True)
class TraceLengths:
    """Lengths read from the workload's trace (the workload hands the column to the source)."""


LengthSpec = FixedLengths | UniformLengths | NormalLengths | LognormalLengths | HistogramLengths | TraceLengths


def _rounded_at_least_one(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.rint(values), 1).astype(np.int64)


def lengths_from_dict(field: str, raw: Any) -> LengthSpec:
    """A length distribution from its mapping (see the module docstring); ``field`` names it in errors."""
    if not isinstance(raw, dict):
        raise LayerwiseError(field, f"must be a mapping with a 'kind', got {raw!r}")
    kind = one_of(f"{field}.kind", required(field, raw, "kind"), LENGTH_KINDS)
    readers = {"fixed": _fixed, "uniform": _uniform, "normal": _normal, "lognormal": _lognormal,
               "histogram": _histogram, "trace": _trace}
    return readers[kind](field, raw)


def _fixed(field: str, raw: dict[str, Any]) -> LengthSpec:
    check_known_keys(field, raw, ("kind", "tokens"))
    return FixedLengths(positive_int(f"{field}.tokens", required(field, raw, "tokens")))


def _uniform(field: str, raw: dict[str, Any]) -> LengthSpec:
    check_known_keys(field, raw, ("kind", "low_tokens", "high_tokens"))
    low = positive_int(f"{field}.low_tokens", required(field, raw, "low_tokens"))
    high = positive_int(f"{field}.high_tokens", required(field, raw, "high_tokens"))
    if high < low:
        raise LayerwiseError(f"{field}.high_tokens", f"{high} is below low_tokens {low}")
    return UniformLengths(low, high)


def _normal(field: str, raw: dict[str, Any]) -> LengthSpec:
    check_known_keys(field, raw, ("kind", "mean_tokens", "std_tokens"))
    mean = positive_float(f"{field}.mean_tokens", required(field, raw, "mean_tokens"))
    std = non_negative_float(f"{field}.std_tokens", required(field, raw, "std_tokens"))
    return NormalLengths(mean, std)


def _lognormal(field: str, raw: dict[str, Any]) -> LengthSpec:
    check_known_keys(field, raw, ("kind", "median_tokens", "mu", "sigma"))
    if ("median_tokens" in raw) == ("mu" in raw):
        raise LayerwiseError(f"{field}.median_tokens", "give exactly one of median_tokens and mu "
                             "(mu is the mean of ln(tokens); median_tokens = exp(mu))")
    sigma = non_negative_float(f"{field}.sigma", required(field, raw, "sigma"))
    if "mu" in raw:
        return LognormalLengths(finite_float(f"{field}.mu", raw["mu"]), sigma)
    return LognormalLengths(math.log(positive_float(f"{field}.median_tokens", raw["median_tokens"])), sigma)


def _histogram(field: str, raw: dict[str, Any]) -> LengthSpec:
    check_known_keys(field, raw, ("kind", "edges_tokens", "weights"))
    edges, weights = required(field, raw, "edges_tokens"), required(field, raw, "weights")
    if not isinstance(edges, list) or len(edges) < 2:
        raise LayerwiseError(f"{field}.edges_tokens", f"must be a list of at least two edges, got {edges!r}")
    checked = [positive_int(f"{field}.edges_tokens[{i}]", edge) for i, edge in enumerate(edges)]
    if any(later <= earlier for earlier, later in pairwise(checked)):
        raise LayerwiseError(f"{field}.edges_tokens", f"must be strictly increasing, got {edges!r}")
    if not isinstance(weights, list) or len(weights) != len(edges) - 1:
        raise LayerwiseError(f"{field}.weights", f"must be a list of {len(edges) - 1} weights (one per bin), "
                             f"got {weights!r}")
    masses = [non_negative_float(f"{field}.weights[{i}]", weight) for i, weight in enumerate(weights)]
    if sum(masses) <= 0.0:
        raise LayerwiseError(f"{field}.weights", f"must not all be zero, got {weights!r}")
    return HistogramLengths(tuple(checked), tuple(masses))


def _trace(field: str, raw: dict[str, Any]) -> LengthSpec:
    check_known_keys(field, raw, ("kind",))
    return TraceLengths()
