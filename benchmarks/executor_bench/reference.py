"""The minimal reference: a plain single-GPU PyTorch decode of the same layers, written as simply
as possible (the gpt-fast way: fused QKV and gate/up weights, one ``scaled_dot_product_attention``
with ``enable_gqa`` on the KV cache as stored, a static cache written in place).

It shares the executor's weight and cache tensors (the same bytes at the same addresses) but none
of its code: it is the bar a fast executor must reach (issue 15: at least 95% of its speed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from executor.calibrate.timing import burst_time_s
from executor.weights import LayerShard

EPS = 1e-5


class ReferenceDecoder:
    """``step(x)``: one token per sequence through every layer, the new K, V written at ``pos``."""

    def __init__(self, layers: list[LayerShard], k_cache: list[torch.Tensor], v_cache: list[torch.Tensor],
                 heads: int, kv_heads: int, head_dim: int, pos: int) -> None:
        self.layers = layers
        self.k_cache = k_cache  # per layer (batch, kv_heads, capacity, head_dim)
        self.v_cache = v_cache
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.pos = pos

    def step(self, x: torch.Tensor) -> torch.Tensor:
        b, hidden = x.shape
        nh, nkv, hd, pos = self.heads, self.kv_heads, self.head_dim, self.pos
        for w, k_cache, v_cache in zip(self.layers, self.k_cache, self.v_cache, strict=True):
            qkv = F.linear(F.rms_norm(x, (hidden,), w.attn_norm, EPS), w.qkv)  # (b, (nh + 2 nkv) hd)
            q, k, v = qkv.split([nh * hd, nkv * hd, nkv * hd], dim=-1)
            k_cache[:b, :, pos] = k.view(b, nkv, hd)
            v_cache[:b, :, pos] = v.view(b, nkv, hd)
            o = F.scaled_dot_product_attention(q.view(b, nh, 1, hd), k_cache[:b, :, :pos + 1],
                                               v_cache[:b, :, :pos + 1], enable_gqa=nh != nkv)  # (b, nh, 1, hd)
            x = x + F.linear(o.reshape(b, nh * hd), w.o_proj)
            gate, up = F.linear(F.rms_norm(x, (hidden,), w.mlp_norm, EPS), w.gate_up).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, w.down)
        return x


def time_reference_s(reference: ReferenceDecoder, x: torch.Tensor, warmup: int, iters: int, graphs: bool) -> float:
    """Seconds per step of the closed loop ``x <- rms_norm(step(x))``, one CUDA graph per step when ``graphs``."""

    def step() -> None:
        y = reference.step(x)
        x.copy_(F.rms_norm(y, (y.shape[-1],), None, EPS))

    cuda = x.device.type == "cuda"
    run = step
    if graphs and cuda:
        side = torch.cuda.Stream(x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            step()
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        run = graph.replay
    for _ in range(warmup):
        run()
    return burst_time_s([run] * iters, x.device) / iters
