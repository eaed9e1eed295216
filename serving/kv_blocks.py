"""The paged KV cache's block accounting (vLLM's ``BlockPool`` and ``allocate_slots``, without
prefix caching): a request holding KV for t tokens holds ceil(t / block_size) blocks; growing it
takes only the blocks it lacks, all or nothing; freeing returns all of them.

Which block ids a request holds does not matter to timing, so the pool counts blocks. With
pipeline parallelism the pool is one for all stages (vLLM allocates the same block ids on every
stage), so its size is the smallest any stage affords (``kv_blocks_from_memory`` per stage, then
the minimum).
"""

from __future__ import annotations

import math

from serving.fields import finite_float, non_negative_float, positive_float, positive_int
from topology.errors import LayerwiseError


def blocks_for_tokens(tokens: int, block_size_tokens: int) -> int:
    """Blocks that hold ``tokens`` tokens of KV: ceil(tokens / block_size)."""
    return -(-tokens // block_size_tokens)


class KvBlockPool:
    """``num_blocks`` blocks of ``block_size_tokens`` tokens each, shared by every request of one replica."""

    def __init__(self, num_blocks: int, block_size_tokens: int) -> None:
        self.num_blocks = positive_int("scheduler.num_blocks", num_blocks)
        self.block_size_tokens = positive_int("scheduler.block_size_tokens", block_size_tokens)
        self._held: dict[int, int] = {}  # request id -> blocks
        self._used = 0

    @property
    def used_blocks(self) -> int:
        return self._used

    @property
    def free_blocks(self) -> int:
        return self.num_blocks - self._used

    @property
    def usage_fraction(self) -> float:
        """Blocks in use over blocks in the pool (vLLM's ``kv_cache_usage``)."""
        return self._used / self.num_blocks

    def held_blocks(self, request_id: int) -> int:
        return self._held.get(request_id, 0)

    def blocks_to_grow(self, request_id: int, tokens: int) -> int:
        """Blocks ``request_id`` still needs to hold KV for ``tokens`` tokens (0 if it has them)."""
        return max(0, blocks_for_tokens(tokens, self.block_size_tokens) - self.held_blocks(request_id))

    def grow(self, request_id: int, tokens: int) -> bool:
        """Make ``request_id`` hold KV for ``tokens`` tokens; False (and nothing taken) if too few are free."""
        needed = self.blocks_to_grow(request_id, tokens)
        if needed > self.free_blocks:
            return False
        if needed:
            self._held[request_id] = self.held_blocks(request_id) + needed
            self._used += needed
        return True

    def free(self, request_id: int) -> int:
        """Return every block of ``request_id`` to the pool; how many it held."""
        blocks = self._held.pop(request_id, 0)
        self._used -= blocks
        return blocks


def kv_blocks_from_memory(
    hbm_bytes: float,
    weights_bytes: float,
    activations_bytes: float,
    kv_bytes_per_token: float,
    block_size_tokens: int,
    memory_utilization: float = 1.0,
    null_blocks: int = 1,
) -> int:
    """Blocks one GPU of one stage can hold: what is left of ``memory_utilization`` × HBM after the
    weights and the peak activations, in blocks of ``block_size_tokens`` × ``kv_bytes_per_token``
    (per token: 2 (K and V) × this stage's layers × KV heads on this GPU × head_dim × dtype bytes),
    less vLLM's reserved null block(s). 0 when nothing fits. All sizes in bytes; the caller computes them.

    As vLLM 0.11 (``determine_available_memory``): ``floor((util·HBM − weights − activations) /
    block_bytes) − 1``. CUDA-graph memory and non-torch allocations belong in ``activations_bytes``.
    """
    hbm = positive_float("kv.hbm_bytes", hbm_bytes)
    weights = non_negative_float("kv.weights_bytes", weights_bytes)
    activations = non_negative_float("kv.activations_bytes", activations_bytes)
    per_token = positive_float("kv.kv_bytes_per_token", kv_bytes_per_token)
    block_size = positive_int("kv.block_size_tokens", block_size_tokens)
    utilization = finite_float("kv.memory_utilization", memory_utilization)
    if not 0.0 < utilization <= 1.0:
        raise LayerwiseError("kv.memory_utilization", f"must be in (0, 1], got {memory_utilization!r}")
    if isinstance(null_blocks, bool) or not isinstance(null_blocks, int) or null_blocks < 0:
        raise LayerwiseError("kv.null_blocks", f"must be an integer >= 0, got {null_blocks!r}")
    left_bytes = utilization * hbm - weights - activations
    if left_bytes <= 0.0:
        return 0
    return max(0, math.floor(left_bytes / (per_token * block_size)) - null_blocks)
