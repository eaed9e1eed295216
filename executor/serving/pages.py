"""The physical KV cache of one rank: pages of ``page_tokens`` tokens, handed to requests as they grow.

The scheduler counts blocks of ``block_size_tokens`` (``serving.kv_blocks``); the attention kernel
may need bigger pages (PyTorch's FlashAttention-2 takes a paged KV cache only in pages of a multiple
of 256 tokens). With pages of m blocks a request holding b blocks holds ceil(b / m) pages, at most
(b + m - 1) / m, so a pool of ``(num_blocks + max_num_seqs (m - 1)) / m`` pages holds whatever the
scheduler admits (only running requests hold KV, at most ``max_num_seqs``). One more page, the last,
is scratch: padded rows of a CUDA-graph batch write their KV there.

Each rank keeps its own pool and grows and frees it in plan order, so ranks agree without talking.
"""

from __future__ import annotations

import math


def pool_pages(num_blocks: int, block_size_tokens: int, page_tokens: int, max_num_seqs: int) -> int:
    """Pages (scratch included) that hold every admissible set of requests (module docstring)."""
    if page_tokens % block_size_tokens:
        raise ValueError(f"a page of {page_tokens} tokens is not a whole number of {block_size_tokens}-token blocks")
    blocks_per_page = page_tokens // block_size_tokens
    return (num_blocks + max_num_seqs * (blocks_per_page - 1)) // blocks_per_page + 1


def page_tokens_for(block_size_tokens: int, multiple_of: int) -> int:
    """The smallest page that is a whole number of blocks and a multiple of ``multiple_of`` tokens."""
    return math.lcm(block_size_tokens, multiple_of)


class PagePool:
    """``num_pages`` pages (the last is scratch) of ``page_tokens`` tokens; request id -> its pages."""

    def __init__(self, num_pages: int, page_tokens: int) -> None:
        if num_pages < 2 or page_tokens < 1:
            raise ValueError(f"a pool needs 2 or more pages of 1 or more tokens, got {num_pages} x {page_tokens}")
        self.num_pages = num_pages
        self.page_tokens = page_tokens
        self.scratch_page = num_pages - 1
        self._free = list(range(num_pages - 2, -1, -1))  # pop() hands out 0, 1, 2, ...
        self._pages: dict[int, list[int]] = {}

    @property
    def used_pages(self) -> int:
        return self.num_pages - 1 - len(self._free)

    def pages(self, request_id: int) -> list[int]:
        return self._pages.get(request_id, [])

    def grow(self, request_id: int, tokens: int) -> None:
        """Make ``request_id`` hold pages for ``tokens`` tokens (never shrinks)."""
        held = self._pages.setdefault(request_id, [])
        needed = -(-tokens // self.page_tokens) - len(held)
        if needed > len(self._free):
            raise RuntimeError(f"KV pages exhausted: request {request_id} needs {needed} more pages of "
                               f"{self.page_tokens} tokens, {len(self._free)} are free")
        held.extend(self._free.pop() for _ in range(max(needed, 0)))

    def free(self, request_id: int) -> None:
        self._free.extend(reversed(self._pages.pop(request_id, [])))

    def slots(self, request_id: int, start: int, stop: int) -> list[int]:
        """Cache slots (page * page_tokens + offset) of token positions [start, stop)."""
        pages, size = self._pages[request_id], self.page_tokens
        return [pages[p // size] * size + p % size for p in range(start, stop)]

    @property
    def scratch_slot(self) -> int:
        return self.scratch_page * self.page_tokens
