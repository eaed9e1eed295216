"""What to measure: the GEMM, attention, L2 and collective grids (pure data, no torch).

GEMM shapes come from model presets: each layer's four weight matrices at tensor-parallel
degrees 1, 2, 4 and 8 (column-parallel QKV and gate/up split their output width, row-parallel
o_proj and down split their input width), so the simulator finds every shape a plan uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from topology.model import ModelSpec, tp_degree_problem

MiB = 1024 * 1024


@dataclass(frozen=True)
class WeightShape:
    """A linear layer ``y = x @ W.T`` with W of shape (n, k): k inputs, n outputs."""

    name: str  # e.g. "seed-dense-16/qkv/tp2"
    n: int
    k: int


@dataclass(frozen=True)
class AttentionShape:
    name: str
    heads: int
    kv_heads: int
    head_dim: int


@dataclass(frozen=True)
class CalibrationGrid:
    """Every size a calibration run visits."""

    gemm_shapes: tuple[WeightShape, ...]
    decode_rows: tuple[int, ...]  # M of decode GEMMs (tokens in flight)
    prefill_rows: tuple[int, ...]  # M of prefill GEMMs
    attention_shapes: tuple[AttentionShape, ...]
    decode_batches: tuple[int, ...]
    decode_contexts: tuple[int, ...]
    prefill_seqs: tuple[int, ...]
    hbm_copy_bytes: tuple[int, ...]  # buffer sizes of the device-to-device copy
    l2_weight_bytes: tuple[int, ...]  # weight sizes of the L2 hot/cold sweep
    l2_rows: int  # M of the skinny L2 GEMM
    l2_k: int  # input width of the L2 GEMM's weight
    launch_counts: tuple[int, ...]  # kernels per timed burst (slope = per-kernel cost)
    collective_bytes: tuple[int, ...]
    repeats: int  # timed repetitions per point (median reported)
    calls_per_timing: int  # calls captured in one CUDA graph / eager burst


def tp_degrees(model: ModelSpec, max_tp: int = 8) -> tuple[int, ...]:
    """Powers of two up to ``max_tp`` that split the model (:func:`topology.model.tp_degree_problem`)."""
    return tuple(tp for tp in (2 ** i for i in range(max_tp.bit_length())) if tp <= max_tp
                 and tp_degree_problem(model, tp) is None)


def model_weight_shapes(model: ModelSpec, max_tp: int = 8) -> tuple[WeightShape, ...]:
    """The four linear layers of one transformer layer at every TP degree that divides it."""
    h = model.hidden_size
    qkv_n = model.q_width + 2 * model.kv_width
    up_n = model.mlp_matrices - 1  # gate and up fused when gated
    shapes = []
    for tp in tp_degrees(model, max_tp):
        tag = f"{model.name}/{{}}/tp{tp}"
        shapes += [
            WeightShape(tag.format("qkv"), n=qkv_n // tp, k=h),  # column-parallel
            WeightShape(tag.format("o_proj"), n=h, k=model.q_width // tp),  # row-parallel
            WeightShape(tag.format("gate_up" if model.gated_mlp else "up"),
                        n=up_n * model.mlp_hidden_size // tp, k=h),  # column-parallel
            WeightShape(tag.format("down"), n=h, k=model.mlp_hidden_size // tp),  # row-parallel
        ]
    return tuple(shapes)


def unique_shapes(shapes: tuple[WeightShape, ...]) -> tuple[WeightShape, ...]:
    """First shape of each distinct (n, k): equal shapes cost the same to measure twice."""
    seen: set[tuple[int, int]] = set()
    out = []
    for shape in shapes:
        if (shape.n, shape.k) not in seen:
            seen.add((shape.n, shape.k))
            out.append(shape)
    return tuple(out)


def attention_shapes(models: tuple[ModelSpec, ...]) -> tuple[AttentionShape, ...]:
    seen: set[tuple[int, int, int]] = set()
    out = []
    for model in models:
        key = (model.num_heads, model.num_kv_heads, model.head_dim)
        if key not in seen:
            seen.add(key)
            out.append(AttentionShape(model.name, *key))
    return tuple(out)


def _powers(start: int, stop: int, factor: int = 2) -> tuple[int, ...]:
    values = []
    value = start
    while value <= stop:
        values.append(value)
        value *= factor
    return tuple(values)


def gpu_grid(models: tuple[ModelSpec, ...], quick: bool) -> CalibrationGrid:
    """Grids for a real GPU: default ~3-4 minutes on one H100, ``quick`` ~1-2 minutes."""
    shapes = unique_shapes(tuple(s for m in models for s in model_weight_shapes(m)))
    if quick:
        return CalibrationGrid(
            gemm_shapes=shapes,
            decode_rows=(1, 4, 16, 64, 256, 512),
            prefill_rows=(2048, 8192),
            attention_shapes=attention_shapes(models),
            decode_batches=(1, 8, 32, 128),
            decode_contexts=(128, 1024, 8192),
            prefill_seqs=(512, 2048, 8192),
            hbm_copy_bytes=(256 * MiB, 1024 * MiB),
            l2_weight_bytes=tuple(s * MiB for s in (2, 8, 16, 24, 32, 48, 64, 128)),
            l2_rows=64,
            l2_k=4096,
            launch_counts=(200, 1000),
            collective_bytes=_powers(1024, 1024 * MiB, 16),
            repeats=5,
            calls_per_timing=16,
        )
    return CalibrationGrid(
        gemm_shapes=shapes,
        decode_rows=_powers(1, 512),
        prefill_rows=(2048, 4096, 8192, 16384),
        attention_shapes=attention_shapes(models),
        decode_batches=_powers(1, 128),
        decode_contexts=_powers(128, 8192),
        prefill_seqs=_powers(256, 16384),
        hbm_copy_bytes=(64 * MiB, 256 * MiB, 1024 * MiB, 2048 * MiB),
        l2_weight_bytes=tuple(s * MiB for s in (2, 4, 8, 12, 16, 24, 32, 40, 48, 64, 96, 128)),
        l2_rows=64,
        l2_k=4096,
        launch_counts=(100, 300, 1000, 3000),
        collective_bytes=_powers(1024, 1024 * MiB, 4),
        repeats=7,
        calls_per_timing=32,
    )


def cpu_grid(models: tuple[ModelSpec, ...], quick: bool) -> CalibrationGrid:
    """Tiny grids for a CPU plumbing run (CI): the numbers mean nothing, the path is the point."""
    shapes = unique_shapes(tuple(s for m in models for s in model_weight_shapes(m, max_tp=2)))
    return CalibrationGrid(
        gemm_shapes=shapes,
        decode_rows=(1, 4) if quick else (1, 2, 4, 8),
        prefill_rows=(64,) if quick else (64, 128),
        attention_shapes=attention_shapes(models),
        decode_batches=(1, 2),
        decode_contexts=(16, 64),
        prefill_seqs=(32,) if quick else (32, 64),
        hbm_copy_bytes=(256 * 1024, 1 * MiB),
        l2_weight_bytes=(64 * 1024, 256 * 1024, 1 * MiB),
        l2_rows=4,
        l2_k=256,
        launch_counts=(20, 100),
        collective_bytes=(1024, 64 * 1024, 4 * MiB),  # up to a size gloo spends more on bytes than latency
        repeats=3,
        calls_per_timing=4,
    )
