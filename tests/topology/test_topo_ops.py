"""Hand-counted FLOPs and bytes of every operator kind and of whole seed layers."""

from __future__ import annotations

import pytest

from topology.layer_graph import (
    layer_kv_bytes_per_device,
    layer_ops,
    layer_weight_bytes_per_device,
    summarize_ops,
)
from topology.model import ModelSpec
from topology.ops import (
    OP_KINDS,
    Op,
    attention_pairs,
    op_activation_bytes,
    op_comm_bytes,
    op_flops,
    op_hbm_bytes,
    op_kv_footprint_bytes,
    op_kv_read_bytes,
    op_kv_write_bytes,
    op_weight_bytes,
)
from topology.workload import TokenShape, Workload

DECODE_128 = TokenShape(batch=128, new_tokens=1, context_len=10000)  # the seed's decode step


def by_name(ops: list[Op]) -> dict[str, Op]:
    return {op.name.split(".", 1)[1]: op for op in ops}


# --- the seed layer's parameters -------------------------------------------------------------

def test_seed_layer_parameters_and_bytes(seed_model: ModelSpec) -> None:
    # attention: Q, K, V (4096 x 4096 each) + O (4096 x 4096) = 4 x 16,777,216
    assert seed_model.attention_params_per_layer == 4 * 4096 * 4096 == 67_108_864
    # gated MLP: gate, up, down = 3 x 4096 x 16384
    assert seed_model.mlp_params_per_layer == 3 * 4096 * 16384 == 201_326_592
    # the seed's "268.4 MB" is this parameter count (without the two RMSNorm vectors)
    assert seed_model.attention_params_per_layer + seed_model.mlp_params_per_layer == 268_435_456
    assert seed_model.params_per_layer == 268_443_648
    assert seed_model.weight_bytes_per_layer == 536_887_296
    assert seed_model.layer_params_total == 16 * 268_443_648  # 4.3e9, not the 30B one seed document says
    assert layer_weight_bytes_per_device(seed_model, 1) == 536_887_296


def test_seed_layer_tp8_weights_split_but_norms_replicate(seed_model: ModelSpec) -> None:
    # every matrix is split 8 ways; the two 4096-wide norm vectors are replicated
    assert layer_weight_bytes_per_device(seed_model, 8) == (268_435_456 // 8 + 2 * 4096) * 2 == 67_125_248


def test_seed_1p875b_model_holds_1p875e9_per_layer() -> None:
    from topology.model import load_model

    model = load_model("seed-1p875b-16")
    assert abs(model.params_per_layer - 1.875e9) / 1.875e9 < 1e-3


# --- one operator of each kind -----------------------------------------------------------------

def test_every_op_kind_is_covered(seed_model: ModelSpec) -> None:
    kinds = {op.kind for op in layer_ops(seed_model, 0, 8)}
    assert kinds == set(OP_KINDS)


def test_qkv_gemm_decode_batch_128(seed_model: ModelSpec) -> None:
    qkv = by_name(layer_ops(seed_model, 0, 1))["qkv"]
    assert (qkv.in_features, qkv.out_features) == (4096, 12288)
    assert op_flops(qkv, DECODE_128) == 2 * 128 * 4096 * 12288 == 12_884_901_888
    assert op_weight_bytes(qkv) == 4096 * 12288 * 2
    assert op_activation_bytes(qkv, DECODE_128) == 128 * (4096 + 12288) * 2
    assert op_kv_read_bytes(qkv, DECODE_128) == 0
    assert op_comm_bytes(qkv, DECODE_128) == 0


def test_qkv_gemm_tp8_splits_output(seed_model: ModelSpec) -> None:
    qkv = by_name(layer_ops(seed_model, 0, 8))["qkv"]
    assert (qkv.in_features, qkv.out_features) == (4096, 1536)
    assert op_flops(qkv, DECODE_128) == 12_884_901_888 / 8
    o_proj = by_name(layer_ops(seed_model, 0, 8))["o_proj"]
    assert (o_proj.in_features, o_proj.out_features) == (512, 4096)


def test_decode_attention(seed_model: ModelSpec) -> None:
    attn = by_name(layer_ops(seed_model, 0, 1))["attention"]
    assert attention_pairs(DECODE_128) == 10000  # one query sees the whole context
    assert op_flops(attn, DECODE_128) == 4 * 128 * 32 * 128 * 10000
    # batch * ctx * 2 (K and V) * kv_heads * head_dim * dtype
    assert op_kv_read_bytes(attn, DECODE_128) == 128 * 10000 * 2 * 32 * 128 * 2 == 20_971_520_000
    assert op_kv_write_bytes(attn, DECODE_128) == 128 * 1 * 2 * 32 * 128 * 2
    assert op_activation_bytes(attn, DECODE_128) == 2 * 128 * 32 * 128 * 2  # Q in, O out
    assert op_weight_bytes(attn) == 0
    assert op_kv_footprint_bytes(attn, 128, 10000) == 20_971_520_000


def test_decode_attention_tp8_splits_heads(seed_model: ModelSpec) -> None:
    attn = by_name(layer_ops(seed_model, 0, 8))["attention"]
    assert (attn.heads, attn.kv_heads, attn.head_dim) == (4, 4, 128)
    assert op_kv_read_bytes(attn, DECODE_128) == 20_971_520_000 // 8
    assert op_flops(attn, DECODE_128) == 4 * 128 * 4 * 128 * 10000


@pytest.mark.parametrize("seq", [1, 2, 7, 100, 10000])
def test_prefill_attention_counts_the_causal_half(seq: int) -> None:
    assert attention_pairs(TokenShape(batch=3, new_tokens=seq, context_len=seq)) == seq * (seq + 1) // 2


def test_attention_pairs_chunk_after_a_prefix() -> None:
    # 3 new tokens after 5 cached ones: the queries see 6, 7 and 8 keys
    assert attention_pairs(TokenShape(batch=1, new_tokens=3, context_len=8)) == 6 + 7 + 8


def test_prefill_attention_flops_and_kv() -> None:
    shape = TokenShape(batch=2, new_tokens=8, context_len=8)
    attn = Op("L0.attention", 0, "attention", 2, heads=4, kv_heads=2, head_dim=16)
    assert op_flops(attn, shape) == 4 * 2 * 4 * 16 * 36
    assert op_kv_read_bytes(attn, shape) == 2 * 8 * 2 * 2 * 16 * 2
    assert op_kv_write_bytes(attn, shape) == 16 * 2 * 2 * 16 * 2
    assert op_activation_bytes(attn, shape) == 2 * 16 * 4 * 16 * 2


def test_norm_activation_residual_allreduce() -> None:
    shape = TokenShape(batch=4, new_tokens=3, context_len=9)  # 12 tokens
    norm = Op("L0.attn_norm", 0, "norm", 2, width=64)
    assert (op_flops(norm, shape), op_activation_bytes(norm, shape), op_weight_bytes(norm)) == (
        4 * 12 * 64, 2 * 12 * 64 * 2, 64 * 2)
    gated = Op("L0.act", 0, "activation", 2, width=32, gated=True)
    plain = Op("L0.act", 0, "activation", 2, width=32, gated=False)
    assert (op_flops(gated, shape), op_activation_bytes(gated, shape)) == (5 * 12 * 32, 3 * 12 * 32 * 2)
    assert (op_flops(plain, shape), op_activation_bytes(plain, shape)) == (8 * 12 * 32, 2 * 12 * 32 * 2)
    residual = Op("L0.attn_residual", 0, "residual", 4, width=64)
    assert (op_flops(residual, shape), op_activation_bytes(residual, shape)) == (12 * 64, 3 * 12 * 64 * 4)
    allreduce = Op("L0.attn_allreduce", 0, "allreduce", 2, width=64, tp_degree=8)
    assert op_flops(allreduce, shape) == 0
    assert op_comm_bytes(allreduce, shape) == 12 * 64 * 2
    assert op_hbm_bytes(allreduce, shape) == 0
    for op in (norm, gated, residual, allreduce):
        assert op_kv_read_bytes(op, shape) == op_kv_write_bytes(op, shape) == 0
        assert op_kv_footprint_bytes(op, 4, 9) == 0


def test_op_hbm_bytes_is_the_sum() -> None:
    shape = TokenShape(batch=2, new_tokens=1, context_len=50)
    attn = Op("L0.attention", 0, "attention", 2, heads=4, kv_heads=2, head_dim=16)
    assert op_hbm_bytes(attn, shape) == (
        op_activation_bytes(attn, shape) + op_kv_read_bytes(attn, shape) + op_kv_write_bytes(attn, shape))


# --- whole layers --------------------------------------------------------------------------------

def test_seed_layer_decode_totals_tp1(seed_model: ModelSpec) -> None:
    t, h, ff, ctx, d = 128, 4096, 16384, 10000, 2
    s = summarize_ops(layer_ops(seed_model, 0, 1), DECODE_128)
    gemm_flops = 2 * t * (h * 3 * h + h * h + h * 2 * ff + ff * h)
    assert gemm_flops == 2 * 128 * 268_435_456
    elementwise = 2 * 4 * t * h + 5 * t * ff + 2 * t * h  # two norms, SiLU*gate, two residual adds
    assert s.flops == gemm_flops + 4 * 128 * 32 * 128 * ctx + elementwise
    assert s.weight_bytes == 536_887_296
    assert s.kv_read_bytes == 20_971_520_000
    assert s.kv_write_bytes == t * 2 * h * d
    activation = (
        2 * (2 * t * h * d)  # norms
        + t * (h + 3 * h) * d + t * (h + h) * d + t * (h + 2 * ff) * d + t * (ff + h) * d  # GEMMs
        + 2 * t * h * d  # attention Q in, O out
        + 3 * t * ff * d  # gated activation
        + 2 * (3 * t * h * d)  # residuals
    )
    assert s.activation_bytes == activation
    assert (s.allreduce_count, s.allreduce_payload_bytes, s.kernel_count) == (0, 0, 10)
    assert s.hbm_bytes == s.weight_bytes + s.activation_bytes + s.kv_read_bytes + s.kv_write_bytes


def test_seed_layer_decode_totals_tp8(seed_model: ModelSpec) -> None:
    one = summarize_ops(layer_ops(seed_model, 0, 1), DECODE_128)
    eight = summarize_ops(layer_ops(seed_model, 0, 8), DECODE_128)
    gemm_flops = 2 * 128 * 268_435_456
    assert eight.flops - (one.flops - gemm_flops - 4 * 128 * 32 * 128 * 10000 - 5 * 128 * 16384) == (
        gemm_flops / 8 + 4 * 128 * 32 * 128 * 10000 / 8 + 5 * 128 * 16384 / 8)
    assert eight.kv_read_bytes == one.kv_read_bytes // 8
    # two all-reduces of the 128 x 4096 BF16 hidden state per layer
    assert (eight.allreduce_count, eight.allreduce_payload_bytes) == (2, 2 * 128 * 4096 * 2)
    assert eight.kernel_count == 10


def test_kv_footprint_per_layer(seed_model: ModelSpec) -> None:
    # the seed's "activation memory 10.48 GB" = 128 x 10000 x 4096 x 2 B is one of K or V per layer
    assert layer_kv_bytes_per_device(seed_model, 1, 128, 10000) == 2 * 128 * 10000 * 4096 * 2
    assert layer_kv_bytes_per_device(seed_model, 8, 128, 10000) == 2 * 128 * 10000 * 4096 * 2 // 8


def test_gqa_kv_uses_kv_heads(tiny_model: ModelSpec) -> None:
    # tiny-test: 4 query heads, 2 KV heads of 16, float32
    assert layer_kv_bytes_per_device(tiny_model, 1, 8, 16) == 8 * 16 * 2 * 2 * 16 * 4
    qkv = by_name(layer_ops(tiny_model, 0, 2))["qkv"]
    assert qkv.out_features == (64 + 2 * 32) // 2


def test_plain_mlp_has_two_matrices() -> None:
    model = ModelSpec("plain", 1, 64, 4, 4, 16, 256, False, 100, 2)
    ops = by_name(layer_ops(model, 0, 1))
    assert ops["gate_up"].out_features == 256
    assert not ops["act"].gated
    assert model.mlp_params_per_layer == 2 * 64 * 256
    assert layer_weight_bytes_per_device(model, 1) == model.weight_bytes_per_layer


def test_workload_token_shapes() -> None:
    decode = Workload(phase="decode", batch_size=128, prompt_len=10000, context_len=10000,
                      context_growth="grow", warmup_iters=2, measured_iters=3)
    assert decode.token_shape(8, iteration=4) == TokenShape(batch=16, new_tokens=1, context_len=10004)
    assert decode.kv_capacity_tokens == 10005
    assert decode.tokens_per_iteration == 128
    prefill = Workload(phase="prefill", batch_size=4, prompt_len=512, context_len=512)
    assert prefill.token_shape(2) == TokenShape(batch=2, new_tokens=512, context_len=512)
    assert prefill.tokens_per_iteration == 4 * 512
    assert prefill.kv_capacity_tokens == 512
