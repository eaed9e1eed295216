"""Pipeline formulas of the closed-form twin (pure): a step from the stages' occupancies.

A stage's occupancy ``occ_s`` is the time one microbatch holds it: its kernels and all-reduces
plus the blocking send to the next stage. With ``M`` microbatches, ``S = sum_s occ_s`` (the
cycle latency) and ``X = max_s occ_s`` (the bottleneck):

* decode, a closed loop of ``M`` microbatches through a ring of FIFO stages:
  ``step = max(S, M * X)``; the first term is the bubble-bound regime (too few microbatches to
  fill the pipeline), the second the bottleneck-bound one. Exact for deterministic stages when
  links do not contend;
* prefill, a batch entering once the previous one has left (a flow shop):
  ``step = S + (M - 1) * X``, and microbatch ``m`` (0-based) leaves at ``S + m * X``, so the mean
  time to first token is ``S + (M - 1) / 2 * X``.

Both steps grow with ``S`` and with ``X``: the plan search relies on that (a partial plan whose
sum or bottleneck is already worse than a known plan's cannot become better).
"""

from __future__ import annotations


def decode_step_s(cycle_s: float, bottleneck_s: float, microbatches: int) -> float:
    return max(cycle_s, microbatches * bottleneck_s)


def prefill_step_s(cycle_s: float, bottleneck_s: float, microbatches: int) -> float:
    return cycle_s + (microbatches - 1) * bottleneck_s


def prefill_ttft_s(cycle_s: float, bottleneck_s: float, microbatches: int) -> float:
    return cycle_s + (microbatches - 1) / 2 * bottleneck_s


def step_s(phase: str, cycle_s: float, bottleneck_s: float, microbatches: int) -> float:
    if phase == "decode":
        return decode_step_s(cycle_s, bottleneck_s, microbatches)
    return prefill_step_s(cycle_s, bottleneck_s, microbatches)
