"""One rank's share of a served model: its stage's layers (the fixed-batch executor's weights and
MLP), stage 0's token embedding, the last stage's output head, and the KV pages.

Per layer (pre-norm, as :mod:`executor.model`), over the R rows of one iteration:
``h = x + AR(o_proj(attn(norm(x))))``, ``y = h + AR(mlp(norm(h)))``; each row's new key and value
are written to its slot first, so attention reads them with the cached prefix. The last stage
samples greedily: an RMS norm, the vocabulary-parallel head (rank i of t holds rows
[i V/t, (i+1) V/t)), each rank's best, and over the TP group the highest logit (ties: the lowest
token id), found by an all-reduce MAX of the logits and MIN of the candidate ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from executor.model import RMS_EPS, mlp
from executor.serving.attention import AttentionSelection, DeviceBatch, VarlenApi, attend
from executor.weights import LayerShard, layer_shard, seeded_normal, shard_rows
from topology.model import ModelSpec

EMBEDDING_LAYER = -2  # the seeded streams of the embedding and the output head use layer -2
Reduce = Callable[[torch.Tensor, dist.ReduceOp.RedOpType], torch.Tensor]


def no_reduce(tensor: torch.Tensor, op: dist.ReduceOp.RedOpType) -> torch.Tensor:
    return tensor


def group_reduce(group: object) -> Reduce:
    """An in-place all-reduce over ``group`` that returns its argument."""

    def reduce(tensor: torch.Tensor, op: dist.ReduceOp.RedOpType) -> torch.Tensor:
        dist.all_reduce(tensor, op=op, group=group)
        return tensor

    return reduce


@dataclass(frozen=True)
class StageShape:
    """Where a rank sits: the layers, the TP group, and whether it embeds tokens or samples them."""

    layers: range
    tp_degree: int
    tp_index: int
    first: bool
    last: bool


class ServingWeights:
    """One rank's weights, drawn as :mod:`executor.weights` draws them (seeded, TP-sharded); built
    once and served by any number of runs."""

    def __init__(self, model: ModelSpec, shape: StageShape, seed: int, device: torch.device,
                 dtype: torch.dtype) -> None:
        self.model, self.shape, self.seed, self.device, self.dtype = model, shape, seed, device, dtype
        self.shards: list[LayerShard] = [layer_shard(model, seed, layer, shape.tp_degree, shape.tp_index, device,
                                                     dtype) for layer in shape.layers]
        h, vocab = model.hidden_size, model.vocab_size
        self.embedding = seeded_normal((vocab, h), seed, EMBEDDING_LAYER, "embedding", device, dtype
                                       ) if shape.first else None  # (V, h)
        self.vocab_rows = -(-vocab // shape.tp_degree)  # rows of the head per rank (the last may be short)
        self.lm_head: torch.Tensor | None = None
        if shape.last:
            padded = self.vocab_rows * shape.tp_degree
            full = seeded_normal((vocab, h), seed, EMBEDDING_LAYER, "lm_head", device, dtype, 1.0 / math.sqrt(h))
            if padded > vocab:
                full = torch.cat([full, torch.zeros((padded - vocab, h), device=device, dtype=dtype)])
            self.lm_head = shard_rows(full, shape.tp_degree, shape.tp_index).contiguous()  # (V/t, h)
            del full

    @property
    def kv_heads_local(self) -> int:
        return self.model.num_kv_heads // self.shape.tp_degree

    @property
    def heads_local(self) -> int:
        return self.model.num_heads // self.shape.tp_degree


class ServingStage:
    """A rank's forward and sampler over one run's KV pages (``num_pages`` of ``selection.page_tokens``)."""

    def __init__(self, weights: ServingWeights, selection: AttentionSelection, api: VarlenApi, num_pages: int,
                 allreduce: Callable[[torch.Tensor], torch.Tensor], reduce: Reduce) -> None:
        self.weights, self.selection, self.api = weights, selection, api
        self.allreduce, self.reduce = allreduce, reduce
        model = weights.model
        shape = (num_pages, selection.page_tokens, weights.kv_heads_local, model.head_dim)
        # Zeros, not empty: a graph's padded rows read the scratch page.
        self.k_pages = [torch.zeros(shape, device=weights.device, dtype=weights.dtype) for _ in weights.shards]
        self.v_pages = [torch.zeros(shape, device=weights.device, dtype=weights.dtype) for _ in weights.shards]

    @property
    def kv_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k_pages + self.v_pages)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(R,) token ids -> (R, h)."""
        assert self.weights.embedding is not None
        return F.embedding(input_ids, self.weights.embedding)

    def forward(self, x: torch.Tensor, batch: DeviceBatch) -> torch.Tensor:
        """(R, h) -> (R, h) through this stage's layers, writing each row's K and V to its slot."""
        model, w_all = self.weights.model, self.weights.shards
        rows, hidden = x.shape
        heads, kv_heads, d = self.weights.heads_local, self.weights.kv_heads_local, model.head_dim
        for local, w in enumerate(w_all):
            qkv = F.linear(F.rms_norm(x, (hidden,), w.attn_norm, RMS_EPS), w.qkv)  # (R, (H + 2K) D / t)
            q, k, v = qkv.split([heads * d, kv_heads * d, kv_heads * d], dim=-1)
            self.k_pages[local].view(-1, kv_heads, d).index_copy_(0, batch.slots, k.reshape(rows, kv_heads, d))
            self.v_pages[local].view(-1, kv_heads, d).index_copy_(0, batch.slots, v.reshape(rows, kv_heads, d))
            attn = attend(self.selection.path, q.view(rows, heads, d), self.k_pages[local], self.v_pages[local],
                          batch, self.api)  # (R, H/t, D)
            x = x + self.allreduce(F.linear(attn.reshape(rows, heads * d), w.o_proj))
            x = x + self.allreduce(mlp(w, F.rms_norm(x, (hidden,), w.mlp_norm, RMS_EPS), model.gated_mlp))
        return x

    def sample(self, hidden: torch.Tensor) -> torch.Tensor:
        """(n, h) -> (n,) int64: the greedy token of each row, over the whole vocabulary."""
        head = self.weights.lm_head
        assert head is not None
        logits = F.linear(F.rms_norm(hidden, (hidden.shape[-1],), None, RMS_EPS), head).float()  # (n, V/t)
        shape, vocab = self.weights.shape, self.weights.model.vocab_size
        offset = shape.tp_index * self.weights.vocab_rows
        if offset + self.weights.vocab_rows > vocab:  # the padded rows of the last shard never win
            logits[:, vocab - offset:] = float("-inf")
        best, index = logits.max(dim=-1)  # (n,), (n,)
        index = index + offset
        if shape.tp_degree == 1:
            return index
        top = self.reduce(best.clone(), dist.ReduceOp.MAX)
        candidate = torch.where(best == top, index, torch.full_like(index, vocab))
        return self.reduce(candidate, dist.ReduceOp.MIN)
