"""One rank's shard of a real transformer: its stage's layers, TP-sharded, with a static KV cache.

Per layer (pre-norm): ``h = x + AR(o_proj(attn(norm(x))))``, ``y = h + AR(down(act(gate_up(norm(h)))))``
where ``AR`` is the TP all-reduce (a no-op at TP 1). Attention is GQA through
``scaled_dot_product_attention``. There is no embedding or LM head (the simulator models
layers only): a decode step's input is a hidden state, and the next token's input is the
RMS-normalised output of the last stage (:func:`next_token_input`). How attention treats the
query groups (decode and prefill separately) is an :class:`executor.attention.AttentionPaths`;
none of the paths copies the KV cache (``expand`` in prefill repeats the prompt's own K and V).

The KV cache of every layer is one tensor ``(batch, kv_heads/t, capacity, head_dim)`` for the
whole batch; microbatch ``m`` uses the rows ``[m*b, (m+1)*b)``. Decode writes the new token's
K and V at ``pos`` and attends to positions ``[0, pos]``: with a fixed context ``pos`` is a
constant (``context_len - 1``, the cache slice is static, so CUDA graphs can capture it);
with a growing context ``pos`` lives in a device tensor and attention reads the whole
capacity under a mask (also capturable).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from executor.attention import AttentionPaths, decode_attention, prefill_attention
from executor.weights import LayerShard, layer_shard, seeded_normal
from topology.model import ModelSpec

RMS_EPS = 1e-5
AllReduce = Callable[[torch.Tensor], torch.Tensor]


def no_allreduce(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def mlp(w: LayerShard, xn: torch.Tensor, gated: bool) -> torch.Tensor:
    """This rank's share of the MLP (before the all-reduce): ``down(act(gate_up(xn)))``."""
    up = F.linear(xn, w.gate_up)  # gated: (..., 2F/t) = [gate | up]; plain: (..., F/t)
    if gated:
        gate, up = up.chunk(2, dim=-1)
        act = F.silu(gate) * up
    else:
        act = F.gelu(up, approximate="tanh")
    return F.linear(act, w.down)


def next_token_input(hidden: torch.Tensor) -> torch.Tensor:
    """The next decode step's input to stage 0: the last stage's output, RMS-normalised (no weight)."""
    return F.rms_norm(hidden, (hidden.shape[-1],), None, RMS_EPS)


class StageModel:
    """The layers ``layers`` of ``model`` on TP rank ``tp_index`` of ``tp_degree``."""

    def __init__(
        self, model: ModelSpec, layers: range, tp_degree: int, tp_index: int, seed: int,
        batch_size: int, kv_capacity_tokens: int, device: torch.device, dtype: torch.dtype,
        allreduce: AllReduce = no_allreduce, paths: AttentionPaths | None = None,
    ) -> None:
        self.model = model
        self.paths = paths or AttentionPaths()  # replaced once the run has measured (executor.attention_choice)
        self.layers = layers
        self.tp_degree = tp_degree
        self.tp_index = tp_index
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.allreduce = allreduce
        self.heads_local = model.num_heads // tp_degree
        self.kv_heads_local = model.num_kv_heads // tp_degree
        self.group_size = model.num_heads // model.num_kv_heads  # query heads per KV head
        self.head_dim = model.head_dim
        self.capacity = kv_capacity_tokens
        self.shards: list[LayerShard] = [
            layer_shard(model, seed, layer, tp_degree, tp_index, device, dtype) for layer in layers
        ]
        cache_shape = (batch_size, self.kv_heads_local, kv_capacity_tokens, model.head_dim)
        # Zeros, not empty: masked (future) positions must hold finite values.
        self.k_cache = [torch.zeros(cache_shape, device=device, dtype=dtype) for _ in layers]
        self.v_cache = [torch.zeros(cache_shape, device=device, dtype=dtype) for _ in layers]
        self.fixed_pos: int | None = None
        self.pos_tensor = torch.zeros(1, device=device, dtype=torch.long)  # grow mode: (1,)
        self.positions = torch.arange(kv_capacity_tokens, device=device)  # (capacity,)
        self.mask = torch.zeros((1, 1, 1, kv_capacity_tokens), device=device, dtype=torch.bool)

    # -- KV cache -------------------------------------------------------------------------
    def fill_kv_seeded(self, tokens: int) -> None:
        """Fill positions ``[0, tokens)`` of every sequence with seeded values, per global KV head."""
        first_head = self.tp_index * self.kv_heads_local
        batch = self.k_cache[0].shape[0] if self.k_cache else 0
        for local, layer in enumerate(self.layers):
            for cache, name in ((self.k_cache[local], "k_cache"), (self.v_cache[local], "v_cache")):
                for head in range(self.kv_heads_local):
                    values = seeded_normal((batch, tokens, self.head_dim), self.seed, layer,
                                           f"{name}.{first_head + head}", self.device, self.dtype)
                    cache[:, head, :tokens].copy_(values)  # (B, tokens, D)

    def set_fixed_position(self, pos: int) -> None:
        """Decode at a fixed context: the new token always goes to ``pos`` (= context_len - 1)."""
        self.fixed_pos = pos

    def set_position(self, pos: int) -> None:
        """Decode at a growing context: the new token goes to ``pos`` (device tensors, graph-safe)."""
        self.fixed_pos = None
        self.pos_tensor.fill_(pos)
        torch.le(self.positions, self.pos_tensor, out=self.mask[0, 0, 0])

    # -- decode ---------------------------------------------------------------------------
    def decode(self, x: torch.Tensor, batch_start: int) -> torch.Tensor:
        """One token per sequence. ``x``: (b, h) -> (b, h); sequences ``[batch_start, batch_start + b)``."""
        for local in range(len(self.shards)):
            x = self._decode_layer(local, x, batch_start)
        return x

    def split_decode_qkv(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(b, (H + 2K) * D / t) -> q (b, H/t, D), k (b, K/t, D), v (b, K/t, D): views, no copies."""
        b, kl, d = qkv.shape[0], self.kv_heads_local, self.head_dim
        q, k, v = qkv.split([self.heads_local * d, kl * d, kl * d], dim=-1)
        return q.view(b, self.heads_local, d), k.view(b, kl, d), v.view(b, kl, d)

    def decode_cache(self, local: int, batch_start: int, b: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The keys, values (b, K/t, ctx, D) and mask decode attends to: views of the cache."""
        k_cache = self.k_cache[local][batch_start:batch_start + b]  # (b, K/t, capacity, D)
        v_cache = self.v_cache[local][batch_start:batch_start + b]
        if self.fixed_pos is not None:
            return k_cache[:, :, :self.fixed_pos + 1], v_cache[:, :, :self.fixed_pos + 1], None
        return k_cache, v_cache, self.mask

    def _decode_layer(self, local: int, x: torch.Tensor, batch_start: int) -> torch.Tensor:
        w = self.shards[local]
        hidden = x.shape[-1]
        b = x.shape[0]
        qkv = F.linear(F.rms_norm(x, (hidden,), w.attn_norm, RMS_EPS), w.qkv)  # (b, (H + 2K) * D / t)
        q, k, v = self.split_decode_qkv(qkv)  # (b, H/t, D), (b, K/t, D), (b, K/t, D)
        k_cache = self.k_cache[local][batch_start:batch_start + b]  # (b, K/t, capacity, D)
        v_cache = self.v_cache[local][batch_start:batch_start + b]
        if self.fixed_pos is not None:
            k_cache[:, :, self.fixed_pos].copy_(k)
            v_cache[:, :, self.fixed_pos].copy_(v)
        else:
            k_cache.index_copy_(2, self.pos_tensor, k.unsqueeze(2))
            v_cache.index_copy_(2, self.pos_tensor, v.unsqueeze(2))
        keys, values, mask = self.decode_cache(local, batch_start, b)
        attn = decode_attention(self.paths.decode, q, keys, values, mask)  # (b, H/t * D)
        x = x + self.allreduce(F.linear(attn, w.o_proj))
        return x + self.allreduce(self._mlp(w, F.rms_norm(x, (hidden,), w.mlp_norm, RMS_EPS)))

    def _mlp(self, w: LayerShard, xn: torch.Tensor) -> torch.Tensor:
        return mlp(w, xn, self.model.gated_mlp)

    # -- prefill --------------------------------------------------------------------------
    def prefill(self, x: torch.Tensor, batch_start: int) -> torch.Tensor:
        """Causal attention over the prompt, filling KV positions ``[0, S)``. ``x``: (b, S, h) -> (b, S, h)."""
        for local in range(len(self.shards)):
            x = self._prefill_layer(local, x, batch_start)
        return x

    def split_prefill_qkv(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(b, S, (H + 2K) * D / t) -> q (b, H/t, S, D), k (b, K/t, S, D), v (b, K/t, S, D): views."""
        b, s = qkv.shape[:2]
        kl, d = self.kv_heads_local, self.head_dim
        q, k, v = qkv.split([self.heads_local * d, kl * d, kl * d], dim=-1)
        return (q.view(b, s, self.heads_local, d).transpose(1, 2), k.view(b, s, kl, d).transpose(1, 2),
                v.view(b, s, kl, d).transpose(1, 2))

    def _prefill_layer(self, local: int, x: torch.Tensor, batch_start: int) -> torch.Tensor:
        w = self.shards[local]
        b, s, hidden = x.shape
        qkv = F.linear(F.rms_norm(x, (hidden,), w.attn_norm, RMS_EPS), w.qkv)  # (b, S, (H + 2K) * D / t)
        q, k, v = self.split_prefill_qkv(qkv)  # (b, H/t, S, D), (b, K/t, S, D), (b, K/t, S, D)
        self.k_cache[local][batch_start:batch_start + b, :, :s].copy_(k)
        self.v_cache[local][batch_start:batch_start + b, :, :s].copy_(v)
        attn = prefill_attention(self.paths.prefill, q, k, v)  # (b, H/t, S, D)
        attn = attn.transpose(1, 2).reshape(b, s, self.heads_local * self.head_dim)
        x = x + self.allreduce(F.linear(attn, w.o_proj))
        return x + self.allreduce(self._mlp(w, F.rms_norm(x, (hidden,), w.mlp_norm, RMS_EPS)))
