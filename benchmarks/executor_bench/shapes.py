"""The shapes the executor benchmark runs (pure data).

Six layer shapes cover head_dim 64 and 128, MHA and GQA at group sizes 1, 4 and 8, hidden 2048 to
8192; each runs decode at batch 1 to 256 and context 512 to 32k under CUDA graphs, a subset eager,
and prefill prompts of 2k to 16k. Layer counts keep a decode step at a few GB (weights + KV cache,
at most about 40 GB), so every case fits one 80 GB H100 and the whole grid runs in about 5 minutes.

==============  ======  =========  ====  =====  ======  ===========================================
layer shape     hidden  heads/KV   D     MLP    layers  like
==============  ======  =========  ====  =====  ======  ===========================================
h2048-d64-g4    2048    32 / 8     64    8192   16      Llama-3.2-1B (the issue's 1B-class shape)
h2048-d64-mha   2048    32 / 32    64    8192   16      the same, MHA
h2048-d64-g8    2048    32 / 4     64    8192   16      the same, 8 queries per KV head
h4096-d128-g4   4096    32 / 8     128   14336  8       Llama-3-8B
h4096-d128-mha  4096    32 / 32    128   11008  8       Llama-2-7B
h8192-d128-g8   8192    64 / 8     128   28672  4       Llama-3-70B
==============  ======  =========  ====  =====  ======  ===========================================
"""

from __future__ import annotations

from dataclasses import dataclass

from topology.model import ModelSpec


@dataclass(frozen=True)
class LayerShape:
    name: str
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_hidden_size: int
    num_layers: int

    @property
    def group_size(self) -> int:
        return self.num_heads // self.num_kv_heads

    def model(self, dtype_bytes: int) -> ModelSpec:
        return ModelSpec(name=self.name, num_layers=self.num_layers, hidden_size=self.hidden_size,
                         num_heads=self.num_heads, num_kv_heads=self.num_kv_heads, head_dim=self.head_dim,
                         mlp_hidden_size=self.mlp_hidden_size, gated_mlp=True, vocab_size=32000,
                         dtype_bytes=dtype_bytes)


@dataclass(frozen=True)
class BenchCase:
    """One measurement: ``batch`` sequences, decode against ``tokens`` cached tokens (the new one
    included) or a prefill of ``tokens``-token prompts; CUDA graphs or eager (decode only)."""

    layer: LayerShape
    phase: str  # "decode" or "prefill"
    batch: int
    tokens: int  # decode: context_len; prefill: prompt_len
    graphs: bool

    @property
    def name(self) -> str:
        if self.phase == "prefill":
            return f"{self.layer.name}-prefill-b{self.batch}-s{self.tokens}"
        return f"{self.layer.name}-decode-b{self.batch}-c{self.tokens}-{'graph' if self.graphs else 'eager'}"


G4_D64 = LayerShape("h2048-d64-g4", 2048, 32, 8, 64, 8192, 16)
MHA_D64 = LayerShape("h2048-d64-mha", 2048, 32, 32, 64, 8192, 16)
G8_D64 = LayerShape("h2048-d64-g8", 2048, 32, 4, 64, 8192, 16)
G4_D128 = LayerShape("h4096-d128-g4", 4096, 32, 8, 128, 14336, 8)
MHA_D128 = LayerShape("h4096-d128-mha", 4096, 32, 32, 128, 11008, 8)
G8_D128 = LayerShape("h8192-d128-g8", 8192, 64, 8, 128, 28672, 4)

K = 1024
# (batch, context) of the decode cases per layer shape; MHA shapes hold 4x the KV per token, so
# their largest cases stop at 256k cached tokens (32 GB) instead of 1M.
DECODE_POINTS: dict[LayerShape, tuple[tuple[int, int], ...]] = {
    G4_D64: ((1, 512), (1, 32 * K), (16, 4 * K), (64, 2 * K), (128, 2 * K), (256, 2 * K), (32, 32 * K)),
    MHA_D64: ((1, 512), (1, 32 * K), (16, 4 * K), (64, 2 * K), (128, 2 * K)),
    G8_D64: ((1, 512), (16, 4 * K), (128, 2 * K), (256, 2 * K), (32, 32 * K)),
    G4_D128: ((1, 512), (1, 32 * K), (16, 4 * K), (64, 2 * K), (128, 2 * K), (256, 1 * K), (32, 32 * K)),
    MHA_D128: ((1, 512), (16, 4 * K), (64, 2 * K), (128, 2 * K)),
    G8_D128: ((1, 512), (1, 32 * K), (16, 4 * K), (128, 2 * K), (256, 2 * K), (32, 32 * K)),
}
EAGER_POINTS: dict[LayerShape, tuple[tuple[int, int], ...]] = {
    G4_D64: ((1, 512), (128, 2 * K)),
    MHA_D64: ((128, 2 * K),),
    G8_D64: ((128, 2 * K),),
    G4_D128: ((1, 512), (128, 2 * K)),
    MHA_D128: ((128, 2 * K),),
    G8_D128: ((1, 512), (128, 2 * K)),
}
PREFILL_POINTS: dict[LayerShape, tuple[tuple[int, int], ...]] = {
    G4_D64: ((1, 4 * K), (1, 16 * K)),
    MHA_D64: ((1, 4 * K),),
    G8_D64: ((1, 8 * K),),
    G4_D128: ((4, 2 * K), (1, 4 * K), (1, 16 * K)),
    MHA_D128: ((1, 4 * K),),
    G8_D128: ((1, 4 * K), (1, 8 * K)),
}


def _cases(decode: dict[LayerShape, tuple[tuple[int, int], ...]],
           eager: dict[LayerShape, tuple[tuple[int, int], ...]],
           prefill: dict[LayerShape, tuple[tuple[int, int], ...]]) -> tuple[BenchCase, ...]:
    """Graph decode first (the goals), then prefill, then eager: a run cut short loses the least."""
    cases = [BenchCase(layer, "decode", b, c, True) for layer, points in decode.items() for b, c in points]
    cases += [BenchCase(layer, "prefill", b, s, False) for layer, points in prefill.items() for b, s in points]
    cases += [BenchCase(layer, "decode", b, c, False) for layer, points in eager.items() for b, c in points]
    return tuple(cases)


def full_grid() -> tuple[BenchCase, ...]:
    return _cases(DECODE_POINTS, EAGER_POINTS, PREFILL_POINTS)


def quick_gpu_grid() -> tuple[BenchCase, ...]:
    """A GPU smoke test of every code path in well under a minute."""
    return _cases({G4_D64: ((128, 2 * K),), MHA_D128: ((1, 512),)}, {G4_D64: ((128, 2 * K),)},
                  {G4_D128: ((1, 4 * K),)})


TINY_MHA = LayerShape("tiny-mha", 64, 4, 4, 16, 128, 2)
TINY_G2 = LayerShape("tiny-g2", 64, 4, 2, 16, 128, 2)
TINY_G4 = LayerShape("tiny-g4", 64, 4, 1, 16, 128, 2)


def cpu_grid() -> tuple[BenchCase, ...]:
    """A CPU plumbing run (float32, tiny shapes; the numbers mean nothing)."""
    return _cases({TINY_MHA: ((2, 32),), TINY_G2: ((2, 32),), TINY_G4: ((1, 16),)}, {TINY_G2: ((2, 32),)},
                  {TINY_G2: ((1, 32),), TINY_MHA: ((2, 16),)})
