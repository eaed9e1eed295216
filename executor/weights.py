"""Deterministic weights and their Megatron tensor-parallel shards.

Every full matrix is drawn from a ``torch.Generator`` seeded by ``(workload.seed, layer,
matrix name)`` alone, so every plan of one model computes the same function: a rank draws
the full matrix (on its own device: the seed layer is 537 MB) and keeps its slice. Scale
``1/sqrt(fan_in)`` keeps activations of order 1 through the residual stream.

Sharding (``t`` = TP degree, ``i`` = this rank's index in the TP group):

=========  ==================  ==========================================================
matrix     full (out, in)      rank i keeps
=========  ==================  ==========================================================
q          (H*D, h)            rows of heads [i*H/t, (i+1)*H/t)          column-parallel
k, v       (K*D, h)            rows of KV heads [i*K/t, (i+1)*K/t)       column-parallel
o          (h, H*D)            columns of heads [i*H/t, (i+1)*H/t)       row-parallel
gate, up   (F, h)              rows [i*F/t, (i+1)*F/t)                   column-parallel
down       (h, F)              columns [i*F/t, (i+1)*F/t)                row-parallel
=========  ==================  ==========================================================

q, k, v are fused into one ``qkv`` matrix and gate, up into one ``gate_up`` per rank.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch

from topology.model import ModelSpec


def stream_seed(seed: int, layer: int, name: str) -> int:
    """A 63-bit generator seed from ``(seed, layer, name)``, stable across runs and machines."""
    digest = hashlib.sha256(f"layerwise/{seed}/{layer}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def seeded_normal(
    shape: tuple[int, ...], seed: int, layer: int, name: str, device: torch.device, dtype: torch.dtype,
    scale: float = 1.0,
) -> torch.Tensor:
    """Standard normal values times ``scale`` from the ``(seed, layer, name)`` stream."""
    generator = torch.Generator(device=device)
    generator.manual_seed(stream_seed(seed, layer, name))
    values = torch.randn(shape, generator=generator, device=device, dtype=torch.float32)
    if scale != 1.0:
        values.mul_(scale)
    return values.to(dtype)


def full_matrix_shape(model: ModelSpec, name: str) -> tuple[int, int]:
    """(out_features, in_features) of one full (unsharded) matrix."""
    h, q, kv, ff = model.hidden_size, model.q_width, model.kv_width, model.mlp_hidden_size
    shapes = {"q": (q, h), "k": (kv, h), "v": (kv, h), "o": (h, q), "gate": (ff, h), "up": (ff, h),
              "down": (h, ff)}
    return shapes[name]


def shard_rows(full: torch.Tensor, tp_degree: int, tp_index: int) -> torch.Tensor:
    """Column-parallel shard: this rank's block of output rows."""
    rows = full.shape[0] // tp_degree
    return full[tp_index * rows:(tp_index + 1) * rows]


def shard_cols(full: torch.Tensor, tp_degree: int, tp_index: int) -> torch.Tensor:
    """Row-parallel shard: this rank's block of input columns."""
    cols = full.shape[1] // tp_degree
    return full[:, tp_index * cols:(tp_index + 1) * cols]


@dataclass(frozen=True)
class LayerShard:
    """One layer's weights on one rank (``F.linear`` layout: (out, in))."""

    attn_norm: torch.Tensor  # (h,)
    qkv: torch.Tensor  # ((H + 2K) * D / t, h)
    o_proj: torch.Tensor  # (h, H * D / t)
    mlp_norm: torch.Tensor  # (h,)
    gate_up: torch.Tensor  # (2F / t, h) gated: [gate; up], plain: (F / t, h) up only
    down: torch.Tensor  # (h, F / t)


def full_matrix(
    model: ModelSpec, seed: int, layer: int, name: str, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    shape = full_matrix_shape(model, name)
    return seeded_normal(shape, seed, layer, name, device, dtype, scale=1.0 / math.sqrt(shape[1]))


def layer_shard(
    model: ModelSpec, seed: int, layer: int, tp_degree: int, tp_index: int,
    device: torch.device, dtype: torch.dtype,
) -> LayerShard:
    """Draw layer ``layer``'s full matrices and keep rank ``tp_index``'s shards (contiguous copies)."""

    def rows(name: str) -> torch.Tensor:
        return shard_rows(full_matrix(model, seed, layer, name, device, dtype), tp_degree, tp_index)

    def cols(name: str) -> torch.Tensor:
        return shard_cols(full_matrix(model, seed, layer, name, device, dtype), tp_degree, tp_index)

    qkv = torch.cat([rows("q"), rows("k"), rows("v")], dim=0).contiguous()
    o_proj = cols("o").contiguous()
    mlp_in = [rows("gate"), rows("up")] if model.gated_mlp else [rows("up")]
    gate_up = torch.cat(mlp_in, dim=0).contiguous()
    down = cols("down").contiguous()
    ones = torch.ones(model.hidden_size, device=device, dtype=dtype)
    return LayerShard(attn_norm=ones, qkv=qkv, o_proj=o_proj, mlp_norm=ones.clone(), gate_up=gate_up, down=down)
