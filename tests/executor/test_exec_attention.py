"""The GQA attention paths against a brute-force loop over heads, and how a run picks one (one process)."""

from __future__ import annotations

import math

import pytest
import torch

from executor.attention import (
    DECODE_PATHS,
    PREFILL_PATHS,
    AttentionPaths,
    decode_attention,
    decode_candidates,
    pick_fastest,
    prefill_attention,
    prefill_candidates,
)
from executor.attention_choice import AttentionRequest, choose_attention
from executor.calibrate.attention import time_paths_s
from executor.calibrate.timing import Device
from executor.model import StageModel
from topology.errors import LayerwiseError
from topology.model import ModelSpec, load_model
from topology.workload import Workload

CPU = torch.device("cpu")
CPU_DEVICE = Device(CPU, torch.float32, 0)


def brute_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: list[list[int]]) -> torch.Tensor:
    """Query row ``r`` of head ``i`` attends to keys ``visible[r]`` of KV head ``i // g``, one dot product at a
    time (float64). q: (b, H, R, D); k, v: (b, K, ctx, D) -> (b, H, R, D)."""
    b, heads, rows, d = q.shape
    group = heads // k.shape[1]
    out = torch.zeros(b, heads, rows, d, dtype=torch.float64)
    for s in range(b):
        for head in range(heads):
            kv = head // group
            for row in range(rows):
                scores = [float(q[s, head, row].double() @ k[s, kv, j].double()) / math.sqrt(d) for j in visible[row]]
                top = max(scores)
                weights = [math.exp(x - top) for x in scores]
                total = sum(weights)
                for w, j in zip(weights, visible[row], strict=True):
                    out[s, head, row] += w / total * v[s, kv, j].double()
    return out


def _rand(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float32)


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 2), (8, 1)])
@pytest.mark.parametrize("path", DECODE_PATHS)
def test_decode_paths_match_brute_force(path: str, heads: int, kv_heads: int) -> None:
    generator = torch.Generator().manual_seed(heads * 10 + kv_heads)
    b, ctx, d = 2, 7, 8
    q = _rand(generator, b, heads, d)
    k, v = _rand(generator, b, kv_heads, ctx, d), _rand(generator, b, kv_heads, ctx, d)
    expected = brute_attention(q.unsqueeze(2), k, v, [list(range(ctx))]).reshape(b, heads * d)
    torch.testing.assert_close(decode_attention(path, q, k, v, None).double(), expected, atol=1e-5, rtol=1e-5)
    mask = torch.tensor([True, True, False, True, False, False, True]).view(1, 1, 1, ctx)
    masked = brute_attention(q.unsqueeze(2), k, v, [[0, 1, 3, 6]]).reshape(b, heads * d)
    torch.testing.assert_close(decode_attention(path, q, k, v, mask).double(), masked, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 2), (6, 2)])
@pytest.mark.parametrize("path", PREFILL_PATHS)
def test_prefill_paths_match_brute_force(path: str, heads: int, kv_heads: int) -> None:
    generator = torch.Generator().manual_seed(heads + kv_heads)
    b, s, d = 2, 5, 8
    q, k, v = _rand(generator, b, heads, s, d), _rand(generator, b, kv_heads, s, d), _rand(generator, b, kv_heads, s, d)
    expected = brute_attention(q, k, v, [list(range(row + 1)) for row in range(s)])  # causal
    torch.testing.assert_close(prefill_attention(path, q, k, v).double(), expected, atol=1e-5, rtol=1e-5)


def test_unknown_paths_are_refused() -> None:
    q = torch.zeros(1, 2, 4)
    kv = torch.zeros(1, 1, 3, 4)
    with pytest.raises(ValueError, match="unknown decode attention path 'flash'"):
        decode_attention("flash", q, kv, kv, None)
    with pytest.raises(ValueError, match="unknown prefill attention path 'grouped'"):
        prefill_attention("grouped", q.unsqueeze(2), kv, kv)
    with pytest.raises(ValueError, match="unknown decode attention path 'x'"):
        AttentionPaths(decode="x")


def test_candidates_by_group_size() -> None:
    assert decode_candidates(1) == ("gqa", "matmul")
    assert decode_candidates(4) == ("grouped", "gqa", "matmul")
    assert prefill_candidates(1) == ("gqa",)
    assert prefill_candidates(8) == ("gqa", "expand")


def test_pick_fastest() -> None:
    order = ("grouped", "gqa", "matmul")
    assert pick_fastest({"grouped": 3e-6, "gqa": 2e-6, "matmul": 5e-6}, order) == "gqa"
    assert pick_fastest({"grouped": 2e-6, "gqa": 2e-6}, order) == "grouped"  # a tie: the earlier candidate
    assert pick_fastest({"grouped": math.inf, "matmul": 9e-6}, order) == "matmul"  # inf: did not run
    assert pick_fastest({"other": 1e-9}, order) is None
    assert pick_fastest({}, order) is None


def test_a_path_that_raises_is_recorded_and_the_others_still_timed() -> None:
    def fails() -> None:
        raise RuntimeError("No available kernel. Aborting execution.\nmore detail")

    times = time_paths_s({"grouped": [fails], "gqa": [lambda: None]}, CPU_DEVICE, repeats=2)
    assert set(times.times_s) == {"gqa"} and times.times_s["gqa"] >= 0.0
    assert times.errors == {"grouped": "RuntimeError: No available kernel. Aborting execution."}
    assert times.fastest(("grouped", "gqa")) == "gqa"


def _tiny(kv_heads: int) -> ModelSpec:
    tiny = load_model("tiny-test")  # 4 layers, hidden 64, 4 heads of 16, gated MLP 128, float32
    return ModelSpec(**{**tiny.to_dict(), "name": f"tiny-kv{kv_heads}", "num_kv_heads": kv_heads})


def _stage(model: ModelSpec, paths: AttentionPaths | None = None, capacity: int = 8) -> StageModel:
    stage = StageModel(model, range(2), 1, 0, seed=3, batch_size=4, kv_capacity_tokens=capacity, device=CPU,
                       dtype=torch.float32, paths=paths)
    stage.fill_kv_seeded(capacity - 1)
    return stage


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_stage_decode_and_prefill_are_the_same_function_on_every_path(kv_heads: int) -> None:
    model = _tiny(kv_heads)
    x = torch.randn(4, 64, generator=torch.Generator().manual_seed(1))  # (b, h)
    prompt = torch.randn(4, 7, 64, generator=torch.Generator().manual_seed(2))  # (b, S, h)
    decoded, prefilled = {}, {}
    for decode in DECODE_PATHS:
        stage = _stage(model, AttentionPaths(decode=decode))
        stage.set_fixed_position(7)
        decoded[decode] = stage.decode(x, 0)
        stage.set_position(7)  # grow mode: the whole capacity under a mask, same visible positions
        torch.testing.assert_close(stage.decode(x, 0), decoded[decode], atol=1e-5, rtol=1e-5)
    for prefill in PREFILL_PATHS:
        prefilled[prefill] = _stage(model, AttentionPaths(prefill=prefill)).prefill(prompt, 0)
    for out in decoded.values():
        torch.testing.assert_close(out, decoded["gqa"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(prefilled["expand"], prefilled["gqa"], atol=1e-5, rtol=1e-5)


def test_choice_forced_only_candidate_and_measured() -> None:
    decode = Workload(phase="decode", batch_size=4, prompt_len=1, context_len=8, measured_iters=1)
    mha, gqa = _stage(_tiny(4)), _stage(_tiny(2))
    forced = choose_attention(gqa, decode, 4, 7, False, AttentionRequest(decode="matmul", prefill="expand"), None)
    assert [(c.phase, c.path, c.how) for c in forced] == [
        ("prefill", "expand", "forced by --prefill-attention expand"),
        ("decode", "matmul", "forced by --decode-attention matmul")]
    assert gqa.paths == AttentionPaths(decode="matmul", prefill="expand")
    assert forced[1].shape == {"heads": 4, "kv_heads": 2, "head_dim": 16, "batch": 4, "context_len": 8}
    prefill_choice, decode_choice = choose_attention(mha, decode, 4, 7, False, AttentionRequest(), None)
    assert (prefill_choice.path, prefill_choice.how, prefill_choice.times_s) == ("gqa", "only candidate", {})
    assert decode_choice.how.startswith("measured at start-up")
    assert set(decode_choice.times_s) == {"gqa", "matmul"}
    assert decode_choice.path == pick_fastest(decode_choice.times_s, ("gqa", "matmul")) == mha.paths.decode
    assert mha.fixed_pos == 7  # measured on the run's own cache slice


def test_choice_follows_the_slowest_rank() -> None:
    """The reduced times decide: a path another rank could not run (inf) is never chosen."""
    decode = Workload(phase="decode", batch_size=4, prompt_len=1, context_len=8, measured_iters=1)
    stage = _stage(_tiny(2))

    def other_rank_slow_except_matmul(values: list[float]) -> list[float]:
        return [math.inf, 1.0, 0.5]  # grouped failed elsewhere, gqa slower than matmul elsewhere

    (choice,) = choose_attention(stage, decode, 4, None, False, AttentionRequest(), other_rank_slow_except_matmul)
    assert (choice.path, choice.times_s) == ("matmul", {"gqa": 1.0, "matmul": 0.5})

    def nobody_ran(values: list[float]) -> list[float]:
        return [math.inf] * len(values)

    with pytest.raises(LayerwiseError, match=r"attention\.decode: no attention path runs this shape"):
        choose_attention(stage, decode, 4, None, False, AttentionRequest(), nobody_ran)


def test_calibration_points_keep_every_candidate_and_the_fastest() -> None:
    from executor.calibrate.attention import measure_attention
    from executor.calibrate.grids import cpu_grid

    grid = cpu_grid((_tiny(2), _tiny(4)), quick=True)
    raw = measure_attention(CPU_DEVICE, grid, 64 * 1024 * 1024, seed=0, progress=lambda message: None)
    points = raw["points"]
    decode_rows = len(grid.decode_batches) * len(grid.decode_contexts)
    assert len(points) == 2 * (decode_rows + len(grid.prefill_seqs))  # two shapes, nothing failed
    for point in points:
        group = point["heads"] // point["kv_heads"]
        candidates = decode_candidates(group) if point["new_tokens"] == 1 else prefill_candidates(group)
        assert tuple(point["paths_s"]) == candidates
        assert point["path"] == pick_fastest(point["paths_s"], candidates)
        assert point["time_s"] == point["paths_s"][point["path"]] == min(point["paths_s"].values())


def test_a_pinned_sdpa_kernel_leaves_matmul_out() -> None:
    decode = Workload(phase="decode", batch_size=4, prompt_len=1, context_len=8, measured_iters=1)
    request = AttentionRequest(sdpa_kernel="math")
    (gqa_choice,) = choose_attention(_stage(_tiny(2)), decode, 4, None, False, request, None)
    assert set(gqa_choice.times_s) == {"grouped", "gqa"}
    assert gqa_choice.how.endswith("; SDPA paths only: --sdpa-backend math")
    (mha_choice,) = choose_attention(_stage(_tiny(4)), decode, 4, None, False, request, None)
    assert (mha_choice.path, mha_choice.how) == ("gqa", "only candidate")
