"""A closed-form capacity bound per deployment, and the latencies it could not beat even unloaded.

Pure arithmetic on a plan's iteration floor (:mod:`sim.capacity.floor`: an iteration of n tokens takes
at least f(n), non-decreasing in n) and on the workload's requests (prompt P_i, output O_i). On one
replica with d pipeline stages (iterations of duration T keep the first stage busy T/d; the driver's
model), at a sustained rate lambda per replica:

* **work**: every unit of time the replica runs iterations whose durations add up to at most d. Each
  request brings P + O - 1 tokens (its prompt, then one decode per output token after the first) and
  needs O - 1 decode iterations; an iteration holds at most ``min(max_num_seqs, budget)`` decodes and
  ``budget`` tokens. For any line ``a + b n <= f(n)`` (a, b >= 0) an iteration of n tokens costs at
  least ``a + b n``, so the work per request is at least ``a (O - 1) / min(seqs, budget) + b (P + O - 1)``
  and ``lambda <= d / max over lines of that``. The lines are those of the lower convex hull of the floor.
* **KV cache**: while a request emits output token t + 1 it is inside an iteration (at least f(1) long)
  holding the blocks of its P + t tokens, so it occupies at least ``f(1) sum_t ceil((P + t) / block)``
  block-seconds; by Little's law ``lambda`` times that, on average, is at most the pool's blocks.
* **sequences**: a request runs for at least O iterations, each at least f(1): ``lambda O f(1) <= seqs``.

A deployment of R replicas takes at most R times one replica's bound. The bound is a necessary
condition: no deployment meets anything at a higher rate, so it prunes what cannot win and caps the
bisection (tested: the bound is at or above every capacity of the brute force space).

**Unloaded latencies**: a request alone still needs its prefill iterations (ceil(P / budget) of them,
P tokens in all: at least ``a ceil(P / budget) + b P`` for every line) before its first token, and
each later token at least f(1). The percentile of these lower bounds is a lower bound of the
percentile; one above its SLO makes the deployment infeasible at every rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from serving.slo import Slo, SloSpec

TOLERANCE = 1e-12


@dataclass(frozen=True)
class Line:
    """``intercept_s + slope_s_per_token * n`` seconds, at or below the floor at every n."""

    intercept_s: float
    slope_s_per_token: float


@dataclass(frozen=True)
class RequestShapes:
    """The prompt and output lengths of the requests a deployment must serve (those within
    ``max_model_len``), as arrays."""

    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    @property
    def count(self) -> int:
        return len(self.prompt_tokens)


def _hull_lines(counts: tuple[int, ...], values_s: tuple[float, ...]) -> list[Line]:
    """Lines a + b n (a, b >= 0) with a + b m_k <= v_k at every right end m_k of the floor's steps:
    those through consecutive vertices of the lower convex hull, the flat one and the one through 0."""
    right = [c - 1 for c in counts[1:]] + [counts[-1]]  # the step starting at counts[k] ends at right[k]
    points = sorted(zip(right, values_s, strict=True))
    hull: list[tuple[int, float]] = []
    for point in points:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (point[1] - y1) - (y2 - y1) * (point[0] - x1) <= 0:
                hull.pop()
            else:
                break
        hull.append(point)
    candidates = [Line(min(values_s), 0.0), Line(0.0, min(v / m for m, v in points))]
    for (x1, y1), (x2, y2) in pairwise(hull):
        slope = (y2 - y1) / (x2 - x1)
        intercept = y1 - slope * x1
        if slope >= 0 and intercept >= 0:
            candidates.append(Line(intercept, slope))
    return [line for line in candidates
            if all(line.intercept_s + line.slope_s_per_token * m <= v * (1 + TOLERANCE) for m, v in points)]


@dataclass(frozen=True)
class ReplicaBound:
    """One replica's bound (requests/s) by each argument, and what limits it."""

    work_per_s: float
    kv_per_s: float
    seqs_per_s: float

    @property
    def rate_per_s(self) -> float:
        return min(self.work_per_s, self.kv_per_s, self.seqs_per_s)

    @property
    def limited_by(self) -> str:
        rate = self.rate_per_s
        return ("iteration work" if rate == self.work_per_s else "KV cache" if rate == self.kv_per_s
                else "max_num_seqs")


def _block_token_sums(shapes: RequestShapes, block_tokens: int) -> np.ndarray:
    """sum over t = 1 .. O - 1 of ceil((P + t) / block), per request, in closed form."""
    def cumulative(n: np.ndarray) -> np.ndarray:  # sum over x = 1 .. n of ceil(x / b)
        q, r = np.divmod(n, block_tokens)
        return block_tokens * q * (q + 1) // 2 + r * (q + 1)
    prompt = shapes.prompt_tokens.astype(np.int64)
    return cumulative(prompt + shapes.output_tokens.astype(np.int64) - 1) - cumulative(prompt)


def replica_bound(counts: tuple[int, ...], values_s: tuple[float, ...], stages: int, max_num_seqs: int,
                  max_num_batched_tokens: int, num_blocks: int, block_tokens: int, shapes: RequestShapes
                  ) -> ReplicaBound:
    """The bound of the module docstring for one replica (requests/s)."""
    shortest_s = values_s[0]
    mean_prompt = float(shapes.prompt_tokens.mean())
    mean_output = float(shapes.output_tokens.mean())
    decodes_per_iteration = min(max_num_seqs, max_num_batched_tokens)
    work_s = max(line.intercept_s * (mean_output - 1.0) / decodes_per_iteration
                 + line.slope_s_per_token * (mean_prompt + mean_output - 1.0)
                 for line in _hull_lines(counts, values_s))
    work = stages / work_s if work_s > 0 else float("inf")
    block_seconds = shortest_s * float(_block_token_sums(shapes, block_tokens).mean())
    kv = num_blocks / block_seconds if block_seconds > 0 else float("inf")
    seqs = max_num_seqs / (mean_output * shortest_s)
    return ReplicaBound(work_per_s=work, kv_per_s=kv, seqs_per_s=seqs)


def unloaded_latencies_s(counts: tuple[int, ...], values_s: tuple[float, ...], max_num_batched_tokens: int,
                         shapes: RequestShapes) -> dict[str, np.ndarray]:
    """Per request, lower bounds of TTFT, TPOT (requests of 2+ tokens), E2E and ITL (seconds)."""
    prompt = shapes.prompt_tokens.astype(np.float64)
    chunks = np.ceil(prompt / max_num_batched_tokens)
    lines = _hull_lines(counts, values_s)
    ttft = np.max([line.intercept_s * chunks + line.slope_s_per_token * prompt for line in lines], axis=0)
    shortest_s = values_s[0]
    output = shapes.output_tokens
    return {"ttft": ttft, "tpot": np.full(int((output >= 2).sum()), shortest_s),
            "e2e": ttft + (output - 1) * shortest_s, "itl": np.full(1, shortest_s)}


def unloaded_violation(lower_bounds_s: dict[str, np.ndarray], slos: SloSpec) -> tuple[Slo, float] | None:
    """The first SLO that even an unloaded deployment misses, with the percentile's lower bound."""
    for slo in slos.slos:
        values = lower_bounds_s[slo.metric]
        if len(values) == 0:
            continue
        at_least_s = float(np.percentile(values, slo.quantile_percent))
        if at_least_s > slo.bound_s:
            return slo, at_least_s
    return None


def kv_rejections(shapes: RequestShapes, num_blocks: int, block_tokens: int) -> int:
    """Requests whose KV (prompt + output - 1 tokens) could never fit a pool of ``num_blocks``."""
    kv_tokens = shapes.prompt_tokens.astype(np.int64) + shapes.output_tokens.astype(np.int64) - 1
    needed = -(-kv_tokens // block_tokens)  # blocks_for_tokens, per request
    return int((needed > num_blocks).sum())


@dataclass(frozen=True)
class PoolsBound:
    """A disaggregated deployment's bound (requests/s, all replicas): each pool's, and which limits it."""

    prefill: ReplicaBound  # one prefill replica's
    decode: ReplicaBound  # one decode replica's
    prefill_replicas: int
    decode_replicas: int

    @property
    def rate_per_s(self) -> float:
        return min(self.prefill_replicas * self.prefill.rate_per_s, self.decode_replicas * self.decode.rate_per_s)

    @property
    def limited_by(self) -> str:
        prefill = self.prefill_replicas * self.prefill.rate_per_s
        pool, bound = ("prefill", self.prefill) if prefill <= self.decode_replicas * self.decode.rate_per_s \
            else ("decode", self.decode)
        return f"{pool} {bound.limited_by}"


def pools_bound(counts: tuple[int, ...], values_s: tuple[float, ...], stages: int, max_num_seqs: int,
                max_num_batched_tokens: int, num_blocks: int, block_tokens: int, shapes: RequestShapes,
                prefill_replicas: int, decode_replicas: int) -> PoolsBound:
    """The module docstring's arguments applied to each pool of a disaggregated deployment (the KV
    transfer between them only adds time, so it is left out of an upper bound):

    * a **prefill** replica serves each request as a request of one output token: its work is the
      prompt's tokens (``b P`` per line), it holds no block while decoding, and a request runs at least
      one iteration;
    * a **decode** replica gets each request with its prompt computed: O - 1 decode iterations and
      O - 1 tokens (``a (O - 1) / min(seqs, budget) + b (O - 1)``), the KV blocks of the module
      docstring, and at least O - 1 iterations of at least f(1) per request."""
    prefill = replica_bound(counts, values_s, stages, max_num_seqs, max_num_batched_tokens, num_blocks, block_tokens,
                            RequestShapes(shapes.prompt_tokens, np.ones_like(shapes.output_tokens)))
    decode_work = replica_bound(counts, values_s, stages, max_num_seqs, max_num_batched_tokens, num_blocks,
                                block_tokens, RequestShapes(np.zeros_like(shapes.prompt_tokens), shapes.output_tokens))
    with_kv = replica_bound(counts, values_s, stages, max_num_seqs, max_num_batched_tokens, num_blocks, block_tokens,
                            shapes)
    decode_iterations_s = float((shapes.output_tokens - 1).mean()) * values_s[0]
    seqs = max_num_seqs / decode_iterations_s if decode_iterations_s > 0 else float("inf")
    decode = ReplicaBound(work_per_s=decode_work.work_per_s, kv_per_s=with_kv.kv_per_s, seqs_per_s=seqs)
    return PoolsBound(prefill, decode, prefill_replicas, decode_replicas)
