"""Attention over a serving batch that costs only the tokens present: no padding to the longest context.

A batch mixes prefill chunks (item i: ``n_i`` new tokens after a cached prefix) and decodes
(``n_i = 1``); item i's queries attend causally to its first ``c_i`` cached positions, aligned at
the bottom right (new token j sees positions ``<= c_i - n_i + j``). Three ways, in order of
preference:

=============  ==========================================================================================
path           how
=============  ==========================================================================================
paged-varlen   ``torch.nn.attention.varlen.varlen_attn`` reading the paged pool through ``block_table`` and
               ``seqused_k``, causal as ``window_size=(-1, 0)``: one call per layer for the whole batch
               (CUDA; PyTorch >= 2.13's signature; FlashAttention-2 wants pages of a multiple of 256)
varlen-gather  each item's KV gathered into one packed tensor, then ``varlen_attn`` with ``cu_seq_k``
               (CUDA; older signatures: ``is_causal`` instead of ``window_size``)
per-request    ``scaled_dot_product_attention`` per item on its gathered KV, with an explicit causal
               mask (the reference; the CPU path)
=============  ==========================================================================================

Which one runs is decided at start-up (:func:`choose_attention`): each candidate the installed
PyTorch offers is run on a small mixed batch and compared with the reference; the first that agrees
wins, and the run's environment records the choice and why the others were left.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from typing import Any

import torch
import torch.nn.functional as F

from executor.serving.inputs import HostBatch
from executor.serving.pages import page_tokens_for

PAGED, GATHER, PER_REQUEST = "paged-varlen", "varlen-gather", "per-request"
PATHS = (PAGED, GATHER, PER_REQUEST)
AUTO = "auto"
FLASH_PAGE_MULTIPLE_TOKENS = 256  # PyTorch's FlashAttention-2: paged KV pages must be a multiple of this


@dataclass(frozen=True)
class VarlenApi:
    """What this PyTorch's ``varlen_attn`` takes (found by reading its signature)."""

    available: bool
    paged: bool  # block_table and seqused_k
    causal: str  # "window" (window_size=(-1, 0)), "is_causal", or "" when unavailable
    gqa_flag: bool  # takes enable_gqa
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"available": self.available, "paged": self.paged, "causal": self.causal, "gqa_flag": self.gqa_flag,
                "note": self.note}


CPU_API = VarlenApi(False, False, "", False, "not looked up: varlen_attn runs on CUDA only")


def varlen_api() -> VarlenApi:
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError as exc:
        return VarlenApi(False, False, "", False, f"no torch.nn.attention.varlen ({exc})")
    parameters = inspect.signature(varlen_attn).parameters
    causal = "window" if "window_size" in parameters else "is_causal" if "is_causal" in parameters else ""
    paged = "block_table" in parameters and "seqused_k" in parameters
    return VarlenApi(bool(causal), paged, causal, "enable_gqa" in parameters,
                     f"varlen_attn({', '.join(parameters)})")


@dataclass
class DeviceBatch:
    """A :class:`HostBatch` on the device, in the shapes the chosen path reads (N items, R rows)."""

    host: HostBatch
    slots: torch.Tensor  # (R,) int64
    cu_seq_q: torch.Tensor  # (N + 1,) int32
    seqused_k: torch.Tensor  # (N,) int32
    max_q: int
    max_k: int
    logits_rows: torch.Tensor  # (n,) int64
    input_ids: torch.Tensor | None  # (R,) int64, stage 0
    block_table: torch.Tensor | None = None  # (N, pages) int32: paged-varlen
    kv_index: torch.Tensor | None = None  # (sum c_i,) int64: varlen-gather
    cu_seq_k: torch.Tensor | None = None  # (N + 1,) int32: both varlen paths


def to_device(host: HostBatch, path: str, device: torch.device, page_tokens: int, max_pages: int) -> DeviceBatch:
    """Copy what ``path`` reads; the lists are built here, on the host (part of the host cost)."""
    contexts = host.context_tokens
    counts = [b - a for a, b in pairwise(host.query_starts)]
    batch = DeviceBatch(
        host=host,
        slots=_tensor(host.slots, torch.int64, device),
        cu_seq_q=_tensor(host.query_starts, torch.int32, device),
        seqused_k=_tensor(contexts, torch.int32, device),
        max_q=max(counts, default=1), max_k=max(contexts, default=1),
        logits_rows=_tensor(host.logits_rows, torch.int64, device),
        input_ids=None if host.input_ids is None else _tensor(host.input_ids, torch.int64, device),
    )
    if path in (PAGED, GATHER):  # the paged kernel reads lengths from seqused_k; cu_seq_k agrees with them
        batch.cu_seq_k = _tensor([0, *accumulate(contexts)], torch.int32, device)
    if path == PAGED:
        table = [list(pages) + [0] * (max_pages - len(pages)) for pages in host.page_lists]
        batch.block_table = _tensor(table, torch.int32, device)
    elif path == GATHER:
        index: list[int] = []
        for pages, context in zip(host.page_lists, contexts, strict=True):
            index += [pages[p // page_tokens] * page_tokens + p % page_tokens for p in range(context)]
        batch.kv_index = _tensor(index, torch.int64, device)
    return batch


def _tensor(values: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    tensor = torch.tensor(values, dtype=dtype)
    return tensor.to(device, non_blocking=True) if device.type == "cuda" else tensor


def attend(path: str, q: torch.Tensor, k_pages: torch.Tensor, v_pages: torch.Tensor, batch: DeviceBatch,
           api: VarlenApi) -> torch.Tensor:
    """q (R, H, D); k_pages, v_pages (pages, page_tokens, K, D) -> (R, H, D)."""
    if path == PAGED:
        from torch.nn.attention.varlen import varlen_attn

        extra: dict[str, Any] = {"enable_gqa": q.shape[1] != k_pages.shape[2]} if api.gqa_flag else {}
        out = varlen_attn(q, k_pages, v_pages, batch.cu_seq_q, batch.cu_seq_k, batch.max_q, batch.max_k,  # type: ignore
                          window_size=(-1, 0), seqused_k=batch.seqused_k, block_table=batch.block_table, **extra)
        return out  # type: ignore[return-value]
    if path == GATHER:
        return _gather_varlen(q, k_pages, v_pages, batch, api)
    return per_request_attention(q, k_pages, v_pages, batch.host)


def _gather_varlen(q: torch.Tensor, k_pages: torch.Tensor, v_pages: torch.Tensor, batch: DeviceBatch,
                   api: VarlenApi) -> torch.Tensor:
    from torch.nn.attention.varlen import varlen_attn

    kv_heads, head_dim = k_pages.shape[2], k_pages.shape[3]
    assert batch.kv_index is not None and batch.cu_seq_k is not None
    keys = k_pages.view(-1, kv_heads, head_dim).index_select(0, batch.kv_index)  # (sum c_i, K, D)
    values = v_pages.view(-1, kv_heads, head_dim).index_select(0, batch.kv_index)
    extra: dict[str, Any] = {"window_size": (-1, 0)} if api.causal == "window" else {"is_causal": True}
    if api.gqa_flag:
        extra["enable_gqa"] = q.shape[1] != kv_heads
    elif q.shape[1] != kv_heads:  # a signature without enable_gqa: give every query head its own copy
        keys = keys.repeat_interleave(q.shape[1] // kv_heads, dim=1)  # (sum c_i, H, D)
        values = values.repeat_interleave(q.shape[1] // kv_heads, dim=1)
    return varlen_attn(q, keys, values, batch.cu_seq_q, batch.cu_seq_k, batch.max_q, batch.max_k,  # type: ignore
                       **extra)


def per_request_attention(q: torch.Tensor, k_pages: torch.Tensor, v_pages: torch.Tensor,
                          host: HostBatch) -> torch.Tensor:
    """The reference: SDPA per item over its gathered KV, causal at the bottom right. Rows past the
    scheduled tokens (graph padding) are left zero."""
    _, heads, head_dim = q.shape
    kv_heads, page_tokens = k_pages.shape[2], k_pages.shape[1]
    out = torch.zeros_like(q)
    flat_k = k_pages.view(-1, kv_heads, head_dim)
    flat_v = v_pages.view(-1, kv_heads, head_dim)
    for index, (pages, context) in enumerate(zip(host.page_lists, host.context_tokens, strict=True)):
        start, stop = host.query_starts[index], host.query_starts[index + 1]
        new = stop - start
        slots = torch.tensor([pages[p // page_tokens] * page_tokens + p % page_tokens for p in range(context)],
                             dtype=torch.int64, device=q.device)
        keys = flat_k.index_select(0, slots).transpose(0, 1).unsqueeze(0)  # (1, K, c, D)
        values = flat_v.index_select(0, slots).transpose(0, 1).unsqueeze(0)
        query = q[start:stop].transpose(0, 1).unsqueeze(0)  # (1, H, n, D)
        mask = None
        if new > 1:  # row j sees positions <= c - n + j
            positions = torch.arange(context, device=q.device)
            mask = positions.unsqueeze(0) <= (context - new + torch.arange(new, device=q.device)).unsqueeze(1)
        attn = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask, enable_gqa=heads != kv_heads)
        out[start:stop] = attn[0].transpose(0, 1)  # (n, H, D)
    return out


@dataclass(frozen=True)
class AttentionSelection:
    """The path this run uses, its KV page size, how it was chosen and what the others said."""

    path: str
    page_tokens: int
    how: str
    checks: dict[str, str] = field(default_factory=dict)  # path -> "agrees (max error ...)" or why not
    api: VarlenApi | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "page_tokens": self.page_tokens, "how": self.how, "checks": dict(self.checks),
                "varlen_api": self.api.to_dict() if self.api else None}


def candidates(device: torch.device, api: VarlenApi) -> tuple[str, ...]:
    """Paths worth checking here, best first (varlen_attn is CUDA-only)."""
    if device.type != "cuda" or not api.available:
        return (PER_REQUEST,)
    return ((PAGED,) if api.paged else ()) + (GATHER, PER_REQUEST)


def page_tokens_of(path: str, block_size_tokens: int) -> int:
    return page_tokens_for(block_size_tokens, FLASH_PAGE_MULTIPLE_TOKENS) if path == PAGED else block_size_tokens


def check_path(path: str, device: torch.device, dtype: torch.dtype, heads: int, kv_heads: int, head_dim: int,
               block_size_tokens: int, api: VarlenApi, seed: int = 0) -> str:
    """Run ``path`` on a small mixed batch (a decode, a chunk after a cached prefix, a fresh prompt)
    against the reference; "" when it agrees, else why not."""
    page = page_tokens_of(path, block_size_tokens)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    items = ((1, 3 * page // 2 + 5), (20, 50 + page), (17, 17))  # (new tokens, context) per item
    pages_per_item = [-(-context // page) for _, context in items]
    k_pages = torch.randn((sum(pages_per_item) + 1, page, kv_heads, head_dim), generator=generator).to(device, dtype)
    v_pages = torch.randn(k_pages.shape, generator=generator).to(device, dtype)
    rows = sum(new for new, _ in items)
    q = torch.randn((rows, heads, head_dim), generator=generator).to(device, dtype)
    first = [sum(pages_per_item[:i]) for i in range(len(items))]
    page_lists = tuple(tuple(range(f, f + n)) for f, n in zip(first, pages_per_item, strict=True))
    starts = [0, *accumulate(new for new, _ in items)]
    host = HostBatch(rows=rows, num_tokens=rows, query_starts=tuple(starts),
                     context_tokens=tuple(c for _, c in items), page_lists=page_lists, slots=(0,) * rows,
                     logits_rows=(), input_ids=None)
    reference = per_request_attention(q.float(), k_pages.float(), v_pages.float(), host)
    try:
        batch = to_device(host, path, device, page, max(pages_per_item))
        out = attend(path, q, k_pages, v_pages, batch, api).float()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    except Exception as exc:  # a kernel this PyTorch or GPU lacks: say so, try the next path
        return f"failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
    error = float((out - reference).abs().max())
    bound = (0.05 if dtype in (torch.bfloat16, torch.float16) else 1e-4) * float(reference.abs().max()) + 1e-4
    if not math.isfinite(error) or error > bound:
        return f"disagrees with the reference: max error {error:.3g} > {bound:.3g}"
    return ""


def choose_attention(requested: str, device: torch.device, dtype: torch.dtype, heads: int, kv_heads: int,
                     head_dim: int, block_size_tokens: int,
                     agree: Callable[[list[bool]], list[bool]] = lambda ok: ok) -> AttentionSelection:
    """The first candidate (or the requested path) that agrees with the reference on every rank
    (``agree`` ands the flags over the ranks)."""
    api = varlen_api() if device.type == "cuda" else CPU_API  # importing varlen loads dynamo: seconds
    offered = candidates(device, api)
    if requested != AUTO and requested not in offered:
        why = "varlen_attn runs on CUDA only" if device.type != "cuda" else api.note
        raise ValueError(f"attention path {requested} is not available here ({why})")
    tried = offered if requested == AUTO else (requested,)
    notes = {path: check_path(path, device, dtype, heads, kv_heads, head_dim, block_size_tokens, api)
             for path in tried}
    passed = agree([notes[path] == "" for path in tried])
    checks = {path: "agrees with the reference" if ok else (notes[path] or "failed on another rank")
              for path, ok in zip(tried, passed, strict=True)}
    for path in PATHS:
        if path not in offered:
            checks.setdefault(path, "not offered by this PyTorch/device" if path != PER_REQUEST else "")
    for path, ok in zip(tried, passed, strict=True):
        if ok:
            how = "requested" if requested != AUTO else ("the only path here" if len(tried) == 1
                                                         else "the first candidate that agrees with the reference")
            return AttentionSelection(path, page_tokens_of(path, block_size_tokens), how, checks, api)
    raise RuntimeError(f"no attention path agrees with the reference: {checks}")
