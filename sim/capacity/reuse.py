"""When one simulated run *is* the run of another scheduler setting, so its verdict can be reused.

Two deployments that differ only in ``max_num_seqs``, ``max_num_batched_tokens`` (and so, through the
activations of a token budget, the KV pool's size) and the CUDA-graph sizes these imply make the same
decisions at every iteration as long as no limit that differs between them ever decided anything in
the run already simulated (A) - then the other run (B) is the same run, iteration for iteration, with
the same verdict. From A's iterations (:class:`sim.capacity.probe.RunLimits`), for the scheduler of
:mod:`serving.scheduler`:

* **sequences**: admission checks ``running < max_num_seqs`` with at most ``peak_running`` running, and
  a check at ``peak_running`` admitted nobody in A; so the checks agree if ``peak < seqs_A`` and
  ``peak <= seqs_B``;
* **token budget**: every request's share is min(its remaining tokens, the budget left). If no
  iteration of A used more than ``budget_B`` tokens and ``budget_B <= budget_A``, every share and every
  admission is the same under B's budget (the budget left in B is never below what A's iteration still
  took); with a larger ``budget_B`` the same holds when A never used its whole budget and prompts are
  chunked (without chunking, a whole prompt that did not fit A's budget might fit B's);
* **CUDA graphs**: every decode-only iteration of A (at most ``peak_running`` sequences) pads to the
  same captured size under both lists;
* **KV pool**: the same size, or no growth could have failed in either: the most blocks A held plus the
  most one growth asks (ceil(tokens / block) + 1) fit both pools. (Requests that can never fit a pool
  are refused before any run, so neither rejects one.)

Only full runs are reused (a run stopped early never shows how close it came to the limits).
"""

from __future__ import annotations

from serving.batch import graph_padding
from serving.kv_blocks import blocks_for_tokens
from serving.scheduler_config import SchedulerConfig
from sim.capacity.probe import RunLimits


def same_run(a: SchedulerConfig, limits: RunLimits, b: SchedulerConfig) -> bool:
    """Whether ``b``'s run is ``a``'s run, given how close ``a``'s run came to its limits (module docstring)."""
    if (a.policy, a.block_size_tokens, a.max_model_len_tokens) != (b.policy, b.block_size_tokens,
                                                                     b.max_model_len_tokens):
        return False
    if a.reserve_full_prompt or b.reserve_full_prompt:
        return False
    peak = limits.peak_running
    if not (peak < a.max_num_seqs and peak <= b.max_num_seqs):
        return False
    tokens = limits.max_tokens
    if tokens > b.max_num_batched_tokens:
        return False
    larger_budget = b.max_num_batched_tokens > a.max_num_batched_tokens
    if larger_budget and not (a.chunked_prefill and tokens < a.max_num_batched_tokens):
        return False
    if any(graph_padding(n, True, a.cuda_graph_sizes) != graph_padding(n, True, b.cuda_graph_sizes)
           for n in range(1, peak + 1)):
        return False
    if a.num_blocks == b.num_blocks:
        return True
    worst_growth = blocks_for_tokens(tokens, a.block_size_tokens) + 1
    return limits.preemptions == 0 and limits.peak_kv_blocks + worst_growth <= min(a.num_blocks, b.num_blocks)
