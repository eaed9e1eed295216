"""The shape families of the study (pure data): layer shapes the shipped profiles never saw, grouped so
that a fit can leave one whole family out and be scored on it.

Each family varies one thing the old kernel model got wrong on unseen shapes (multi-query attention
at long context, head_dim, the GQA ratio, a query width other than the hidden size, the MLP's size and
kind), and ``mixed`` draws shapes at random (seeded) across all of them. Every shape runs decode under
CUDA graphs at a few (batch, context) points and one or two prefills (eager, as the executor runs
prefill), in one process on one GPU (TP1 x PP1), as ``layerwise run`` would run them.

==========  ==================================================================================
family      shapes
==========  ==================================================================================
mqa         1 KV head: a Llama-3-8B-shaped layer and a Falcon-7B-shaped one (71 heads of 64), to 64k
head-dim    head_dim 64, 80, 96 and 256 (hidden = heads x head_dim)
gqa         32 heads of 128 at 32, 8 and 4 KV heads (ratios 1, 4, 8) and 40 of 128 at 8 (ratio 5)
q-width     a query width other than the hidden size: 16 x 256 on 3072, 48 x 128 on 4096, 8 x 128 on 2048
mlp         the MLP: 4096 and 28672 wide (gated), 16384 plain (GELU)
tp-shard    one GPU's share of the TP2 and TP4 plans of the measured 4 x H200 runs (hidden 4096 and 1024)
mixed       six shapes drawn at random from all of the above's ranges (seed 0)
==========  ==================================================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from topology.model import ModelSpec

K = 1024


@dataclass(frozen=True)
class Shape:
    """One layer shape of a family, stacked ``num_layers`` deep."""

    family: str
    name: str
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_hidden_size: int
    gated_mlp: bool = True
    num_layers: int = 8

    def model(self, dtype_bytes: int = 2) -> ModelSpec:
        return ModelSpec(name=self.name, num_layers=self.num_layers, hidden_size=self.hidden_size,
                         num_heads=self.num_heads, num_kv_heads=self.num_kv_heads, head_dim=self.head_dim,
                         mlp_hidden_size=self.mlp_hidden_size, gated_mlp=self.gated_mlp, vocab_size=32000,
                         dtype_bytes=dtype_bytes)


@dataclass(frozen=True)
class Case:
    """One measurement: decode (CUDA graphs) of ``batch`` sequences at ``tokens`` cached tokens, or a
    prefill (eager) of ``batch`` prompts of ``tokens`` tokens."""

    shape: Shape
    phase: str  # "decode" or "prefill"
    batch: int
    tokens: int

    @property
    def name(self) -> str:
        kind = (f"decode-b{self.batch}-c{self.tokens}" if self.phase == "decode"
                else f"prefill-b{self.batch}-s{self.tokens}")
        return f"{self.shape.name}-{kind}"


DECODE = ((1, 2 * K), (16, 4 * K), (64, 2 * K), (8, 16 * K))
PREFILL = ((1, 4 * K),)

SHAPES: tuple[Shape, ...] = (
    Shape("mqa", "mqa-h4096-d128", 4096, 32, 1, 128, 14336),
    Shape("mqa", "mqa-falcon-h4544-d64", 4544, 71, 1, 64, 18176, gated_mlp=False, num_layers=6),
    Shape("head-dim", "hd64-h2048", 2048, 32, 8, 64, 8192, num_layers=12),
    Shape("head-dim", "hd80-h2560", 2560, 32, 8, 80, 10240, num_layers=10),
    Shape("head-dim", "hd96-h3072", 3072, 32, 8, 96, 12288),
    Shape("head-dim", "hd256-h4096", 4096, 16, 4, 256, 14336),
    Shape("gqa", "gqa1-h4096", 4096, 32, 32, 128, 11008),
    Shape("gqa", "gqa4-h4096", 4096, 32, 8, 128, 14336),
    Shape("gqa", "gqa5-h5120", 5120, 40, 8, 128, 13824, num_layers=6),
    Shape("gqa", "gqa8-h4096", 4096, 32, 4, 128, 14336),
    Shape("q-width", "qw4096-h3072-d256", 3072, 16, 16, 256, 24576),
    Shape("q-width", "qw6144-h4096", 4096, 48, 8, 128, 14336),
    Shape("q-width", "qw1024-h2048", 2048, 8, 2, 128, 8192, num_layers=12),
    Shape("mlp", "mlp4096-h4096", 4096, 32, 8, 128, 4096),
    Shape("mlp", "mlp28672-h4096", 4096, 32, 8, 128, 28672, num_layers=6),
    Shape("mlp", "mlp16384-plain-h4096", 4096, 32, 8, 128, 16384, gated_mlp=False),
    # the per-GPU layer of the 4 x H200 runs' TP plans (their all-reduces aside): heads and MLP split by TP
    Shape("tp-shard", "shard-tp2-h4096", 4096, 16, 16, 128, 8192, num_layers=16),
    Shape("tp-shard", "shard-tp4-h4096", 4096, 8, 8, 128, 4096, num_layers=16),
    Shape("tp-shard", "shard-tp2-h1024", 1024, 4, 4, 128, 2048, num_layers=16),
    Shape("tp-shard", "shard-tp4-h1024", 1024, 2, 2, 128, 1024, num_layers=16),
)
DECODE_POINTS: dict[str, tuple[tuple[int, int], ...]] = {
    "mqa": ((4, 16 * K), (16, 32 * K), (8, 64 * K), (64, 8 * K)),
}
SHAPE_DECODE_POINTS: dict[str, tuple[tuple[int, int], ...]] = {  # the 4 x H200 runs' (microbatch, context)
    "shard-tp2-h4096": ((128, 2 * K), (64, 2 * K), (32, 8 * K), (8, 512)),
    "shard-tp4-h4096": ((128, 2 * K), (64, 2 * K), (32, 8 * K), (8, 512)),
    "shard-tp2-h1024": ((64, 128), (32, 128), (16, 128)),
    "shard-tp4-h1024": ((64, 128), (32, 128)),
}


def mixed_shapes(count: int = 6, seed: int = 0) -> tuple[Shape, ...]:
    """Shapes drawn across the families' ranges (head_dim, KV heads, query width, MLP width and kind)."""
    draw = random.Random(seed)
    shapes = []
    for index in range(count):
        head_dim = draw.choice((64, 80, 96, 128, 256))
        kv_heads = draw.choice((1, 2, 4, 8, 16))
        group = draw.choice((1, 2, 4, 5, 8))
        heads = kv_heads * group
        hidden = draw.choice((2048, 3072, 4096, 5120))
        mlp = draw.choice((2, 3, 3.5, 4)) * hidden
        gated = draw.random() < 0.75
        layers = max(4, min(12, int(4e9 / (hidden * (heads + 2 * kv_heads) * head_dim * 2
                                            + 3 * hidden * mlp * 2) / 4)))
        shapes.append(Shape("mixed", f"mixed{index}-h{hidden}-{heads}x{head_dim}-kv{kv_heads}", hidden, heads,
                            kv_heads, head_dim, int(mlp) // 256 * 256, gated_mlp=gated, num_layers=layers))
    return tuple(shapes)


def all_shapes() -> tuple[Shape, ...]:
    return SHAPES + mixed_shapes()


def cases(shapes: tuple[Shape, ...] | None = None) -> tuple[Case, ...]:
    """Decode of every shape first, then prefill: a run cut short loses the least."""
    chosen = shapes if shapes is not None else all_shapes()
    decode = [Case(s, "decode", b, c) for s in chosen
              for b, c in SHAPE_DECODE_POINTS.get(s.name, DECODE_POINTS.get(s.family, DECODE))]
    prefill = [Case(s, "prefill", b, t) for s in chosen if s.family != "tp-shard" for b, t in PREFILL]
    return tuple(decode + prefill)


TINY = (Shape("cpu", "tiny-g2", 64, 4, 2, 16, 128, num_layers=2), Shape("cpu", "tiny-hd24", 96, 4, 1, 24, 160,
                                                                          gated_mlp=False, num_layers=2))
TINY_DECODE, TINY_PREFILL = ((2, 32),), ((1, 32),)


def cpu_cases() -> tuple[Case, ...]:
    """A CPU plumbing run (float32, tiny shapes; the numbers mean nothing)."""
    return tuple([Case(s, "decode", b, c) for s in TINY for b, c in TINY_DECODE]
                 + [Case(s, "prefill", b, t) for s in TINY for b, t in TINY_PREFILL])
