"""The ways the executor can compute grouped-query attention, and the record of which one ran.

``H`` query heads share ``K`` KV heads in groups of ``g = H / K`` (query head ``i`` reads KV head
``i // g``, the order of ``repeat_interleave``). None of the decode paths copies K or V:

=========  =====================================================================================
decode     how
=========  =====================================================================================
grouped    SDPA with the group as query rows: q ``(b, K, g, D)`` against the cache ``(b, K, ctx, D)``
gqa        SDPA's own GQA: q ``(b, H, 1, D)``, ``enable_gqa=True`` on the cache as stored
matmul     two batched GEMMs around a float32 softmax, on the grouped view (no SDPA)
=========  =====================================================================================

=========  =====================================================================================
prefill    how
=========  =====================================================================================
gqa        causal SDPA with ``enable_gqa=True``: K and V ``(b, K, S, D)`` as projected
expand     K and V repeated to ``(b, H, S, D)`` (``repeat_interleave``), then causal SDPA
=========  =====================================================================================

Which path a shape runs is chosen by measuring the candidates (``executor.calibrate.attention``),
never by a rule; :func:`pick_fastest` is the one place that turns measured times into a choice.
With ``g = 1`` (MHA) the grouped and gqa decode calls are one and the same, and prefill has one
path, so fewer candidates are measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

DECODE_PATHS = ("grouped", "gqa", "matmul")
PREFILL_PATHS = ("gqa", "expand")
AUTO = "auto"


def decode_candidates(group_size: int) -> tuple[str, ...]:
    """Decode paths worth measuring for ``group_size`` query heads per KV head."""
    return ("gqa", "matmul") if group_size == 1 else DECODE_PATHS


def prefill_candidates(group_size: int) -> tuple[str, ...]:
    """Prefill paths worth measuring (one for MHA: nothing to expand)."""
    return ("gqa",) if group_size == 1 else PREFILL_PATHS


def matmul_attention(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """``softmax(q K^T / sqrt(D)) V`` as two batched GEMMs.

    q: (b, K, g, D); keys, values: (b, K, ctx, D); mask: broadcastable to (b, K, g, ctx) or None.
    """
    scores = torch.matmul(q, keys.transpose(-1, -2)).float() * q.shape[-1] ** -0.5  # (b, K, g, ctx)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1).to(values.dtype), values)  # (b, K, g, D)


def decode_attention(
    path: str, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """One new token per sequence. q: (b, H, D); keys, values: (b, K, ctx, D) -> (b, H * D).

    ``mask`` (bool, broadcastable to (b, heads, rows, ctx)) marks the positions to attend to; None: all.
    """
    b, heads, d = q.shape
    kv_heads = keys.shape[1]
    if path == "gqa":
        out = F.scaled_dot_product_attention(q.unsqueeze(2), keys, values, attn_mask=mask,
                                             enable_gqa=heads != kv_heads)  # (b, H, 1, D)
    elif path == "grouped":
        out = F.scaled_dot_product_attention(q.view(b, kv_heads, heads // kv_heads, d), keys, values,
                                             attn_mask=mask)  # (b, K, g, D)
    elif path == "matmul":
        out = matmul_attention(q.view(b, kv_heads, heads // kv_heads, d), keys, values, mask)  # (b, K, g, D)
    else:
        raise ValueError(f"unknown decode attention path {path!r} (known: {', '.join(DECODE_PATHS)})")
    return out.reshape(b, heads * d)  # head-major in both views: head k*g + j is row (k, j)


def prefill_attention(path: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention over the prompt. q: (b, H, S, D); k, v: (b, K, S, D) -> (b, H, S, D)."""
    group_size = q.shape[1] // k.shape[1]
    if path == "gqa":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=group_size > 1)
    if path == "expand":
        if group_size > 1:
            k = k.repeat_interleave(group_size, dim=1)  # (b, H, S, D)
            v = v.repeat_interleave(group_size, dim=1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    raise ValueError(f"unknown prefill attention path {path!r} (known: {', '.join(PREFILL_PATHS)})")


def pick_fastest(times_s: dict[str, float], candidates: tuple[str, ...]) -> str | None:
    """The candidate with the least finite time (the earlier candidate on a tie); None if none ran."""
    finite = [(times_s[path], index, path) for index, path in enumerate(candidates)
              if path in times_s and math.isfinite(times_s[path])]
    return min(finite)[2] if finite else None


@dataclass(frozen=True)
class AttentionChoice:
    """Which attention path one phase runs, and why: measured, forced, or the only candidate."""

    phase: str  # "decode" or "prefill"
    path: str
    how: str  # "measured at start-up", "forced by --decode-attention gqa", "only candidate", ...
    shape: dict[str, int] = field(default_factory=dict)  # batch, heads, kv_heads, head_dim, context/prompt
    times_s: dict[str, float] = field(default_factory=dict)  # candidate -> seconds per call (slowest rank)
    errors: dict[str, str] = field(default_factory=dict)  # candidate -> why it could not run
    measuring_s: float = 0.0  # wall time the measurement took on this rank (0 when not measured)

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "path": self.path, "how": self.how, "shape": dict(self.shape),
                "times_s": dict(self.times_s), "errors": dict(self.errors), "measuring_s": self.measuring_s}


@dataclass(frozen=True)
class AttentionPaths:
    """The paths a :class:`executor.model.StageModel` runs."""

    decode: str = "gqa"
    prefill: str = "gqa"

    def __post_init__(self) -> None:
        if self.decode not in DECODE_PATHS:
            raise ValueError(f"unknown decode attention path {self.decode!r} (known: {', '.join(DECODE_PATHS)})")
        if self.prefill not in PREFILL_PATHS:
            raise ValueError(f"unknown prefill attention path {self.prefill!r} (known: {', '.join(PREFILL_PATHS)})")
