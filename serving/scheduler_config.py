"""The iteration scheduler's settings, validated once (an experiment file's ``scheduler`` section).

Policies:

* ``vllm``: vLLM V1 with chunked prefill: running requests first, in admission order, each given
  min(its remaining tokens, the budget left); then waiting requests first come first served while
  the budget, ``max_num_seqs`` and free KV blocks allow, stopping at the first that does not fit;
  no admissions in an iteration that preempted.
* ``prefill-first``: the same without chunking (Orca-like): a waiting request is admitted only if
  its whole prompt fits the budget left; running requests keep decoding in the same iteration.
* ``static``: static batching: when nothing runs, admit up to ``max_num_seqs`` requests whose
  whole prompts fit the budget together and whose KV fits at full length; run them to completion
  (the batch only shrinks); admit again when the batch is empty. A fixed-batch benchmark is this
  with every request present at t = 0.

Without chunking a prompt must fit one iteration, so ``prefill-first`` and ``static`` need
``max_num_batched_tokens >= max_model_len_tokens`` (vLLM sets the budget so when chunking is off).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from serving.fields import check_known_keys, one_of, positive_int, required
from topology.errors import LayerwiseError

POLICIES = ("vllm", "prefill-first", "static")
FIELD = "scheduler"


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    """One replica's scheduler.

    policy: ``vllm``, ``prefill-first`` or ``static`` (module docstring).
    max_num_batched_tokens: the token budget of one iteration (new tokens, prefill and decode).
    max_num_seqs: the most requests running at once (all in-flight iterations together).
    block_size_tokens: tokens per KV block (vLLM 0.11: 16; 0.34: 64).
    num_blocks: KV blocks in the pool (``kv_blocks_from_memory``).
    max_model_len_tokens: the longest prompt + output accepted; longer requests are rejected.
    cuda_graph_sizes: increasing captured batch sizes; a decode-only iteration is padded to the
        next one (empty: no graphs, no padding).
    reserve_full_prompt: admit a waiting request only if the blocks for its whole prompt are free,
        not just for its first chunk (vLLM 0.34's ``scheduler_reserve_full_isl``; 0.11 does not).
    """

    policy: str = "vllm"
    max_num_batched_tokens: int
    max_num_seqs: int
    block_size_tokens: int = 16
    num_blocks: int
    max_model_len_tokens: int
    cuda_graph_sizes: tuple[int, ...] = ()
    reserve_full_prompt: bool = False

    def __post_init__(self) -> None:
        one_of(f"{FIELD}.policy", self.policy, POLICIES)
        for key in ("max_num_batched_tokens", "max_num_seqs", "block_size_tokens", "num_blocks",
                    "max_model_len_tokens"):
            positive_int(f"{FIELD}.{key}", getattr(self, key))
        sizes = self.cuda_graph_sizes
        if not isinstance(sizes, tuple):
            raise LayerwiseError(f"{FIELD}.cuda_graph_sizes", f"must be a tuple of batch sizes, got {sizes!r}")
        for index, size in enumerate(sizes):
            positive_int(f"{FIELD}.cuda_graph_sizes[{index}]", size)
        if any(later <= earlier for earlier, later in pairwise(sizes)):
            raise LayerwiseError(f"{FIELD}.cuda_graph_sizes", f"must be strictly increasing, got {list(sizes)}")
        if not isinstance(self.reserve_full_prompt, bool):
            raise LayerwiseError(f"{FIELD}.reserve_full_prompt",
                                 f"must be true or false, got {self.reserve_full_prompt!r}")
        if self.max_num_batched_tokens < self.block_size_tokens:
            raise LayerwiseError(f"{FIELD}.max_num_batched_tokens",
                                 f"{self.max_num_batched_tokens} is smaller than one KV block "
                                 f"({self.block_size_tokens} tokens)")
        if self.policy != "vllm" and self.max_num_batched_tokens < self.max_model_len_tokens:
            raise LayerwiseError(
                f"{FIELD}.max_num_batched_tokens",
                f"{self.max_num_batched_tokens} is below max_model_len_tokens {self.max_model_len_tokens}: "
                f"policy {self.policy} does not chunk prompts, so a whole prompt must fit one iteration",
            )

    @property
    def chunked_prefill(self) -> bool:
        return self.policy == "vllm"


def scheduler_config_from_dict(raw: Any) -> SchedulerConfig:
    """Scheduler settings from a mapping (an experiment file's ``scheduler``); lists become tuples."""
    known = ("policy", "max_num_batched_tokens", "max_num_seqs", "block_size_tokens", "num_blocks",
             "max_model_len_tokens", "cuda_graph_sizes", "reserve_full_prompt")
    check_known_keys(FIELD, raw, known)
    values = dict(raw)
    for key in ("max_num_batched_tokens", "max_num_seqs", "num_blocks", "max_model_len_tokens"):
        required(FIELD, values, key)
    if "cuda_graph_sizes" in values:
        sizes = values["cuda_graph_sizes"]
        if not isinstance(sizes, list):
            raise LayerwiseError(f"{FIELD}.cuda_graph_sizes", f"must be a list of batch sizes, got {sizes!r}")
        values["cuda_graph_sizes"] = tuple(sizes)
    return SchedulerConfig(**values)
