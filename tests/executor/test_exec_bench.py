"""The executor benchmark: hand-worked floors, the goals, the minimal reference computing the same
function as the executor, and a CPU plumbing run of the grid command."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from executor.model import StageModel
from topology.experiment import build_plan, load_experiment
from topology.profile import HardwareProfile, ProfileParams, write_profile

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the benchmark's own modules (executor_bench.*), as when run as a script

from executor_bench.floor import Rates, rates_from_profile, stage_step_cost, step_floor  # noqa: E402
from executor_bench.measure import CaseResult, Iterations, case_plan, case_workload  # noqa: E402
from executor_bench.reference import ReferenceDecoder, time_reference_s  # noqa: E402
from executor_bench.shapes import G4_D64, TINY_G2, TINY_G4, TINY_MHA, BenchCase, full_grid  # noqa: E402
from executor_bench.table import verdicts  # noqa: E402

_SPEC = importlib.util.spec_from_file_location("bench_executor", BENCHMARKS / "bench_executor.py")
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)

SEED_X1 = Path(__file__).resolve().parents[2] / "executor" / "suites" / "experiments" / "seed-x1.yaml"
RATES = Rates(hbm_bw_bytes_per_s=3.0e12, matmul_flops_per_s=700e12, source="test")


def test_decode_floor_of_the_seed_layer_at_batch_128_context_2048() -> None:
    experiment = load_experiment(str(SEED_X1))
    plan = build_plan(experiment, "tp1")
    weights = 16 * 268_443_648 * 2  # 16 layers of 268,443,648 BF16 parameters
    kv = 16 * 128 * 2048 * 2 * 4096 * 2  # layers x sequences x context x (K, V) x width x bytes
    floor = step_floor(plan, experiment.workload, RATES)
    assert floor.bytes_per_gpu == weights + kv
    assert floor.floor_s == pytest.approx((weights + kv) / 3.0e12)


def test_microbatches_read_the_weights_once_each() -> None:
    experiment = load_experiment(str(SEED_X1), ["plans.tp1.microbatches=4"])
    plan = build_plan(experiment, "tp1")
    bytes_mb4, _ = stage_step_cost(plan, experiment.workload, 0)
    assert bytes_mb4 == 4 * 16 * 268_443_648 * 2 + 16 * 128 * 2048 * 2 * 4096 * 2


def test_floor_of_the_issues_1b_class_shape() -> None:
    """hidden 2048, 32 heads of 64 on 8 KV heads, gated MLP 8192, 16 layers, batch 128, context 2048."""
    case = BenchCase(G4_D64, "decode", 128, 2048, True)
    workload = case_workload(case, Iterations(1, 1))
    per_layer_params = 2048 * (2048 + 2 * 512) + 2048 * 2048 + 3 * 2048 * 8192 + 2 * 2048  # qkv, o, MLP, norms
    assert per_layer_params == 60_821_504
    kv = 16 * 128 * 2048 * 2 * 512 * 2  # layers x sequences x context x (K, V) x KV width x bytes = 8.59 GB
    floor = step_floor(case_plan(case, workload, 2), workload, RATES)
    assert floor.bytes_per_gpu == 16 * per_layer_params * 2 + kv == 10_536_222_720
    assert floor.floor_s == pytest.approx(10_536_222_720 / 3.0e12)


def test_prefill_floor_counts_the_causal_half() -> None:
    case = BenchCase(TINY_MHA, "prefill", 2, 16, False)  # hidden 64, 4 heads of 16, MLP 128, 2 layers
    workload = case_workload(case, Iterations(1, 1))
    tokens = 2 * 16
    gemm = 2 * tokens * (64 * 3 * 64 + 64 * 64 + 3 * 64 * 128)  # qkv, o, gate_up + down
    attention = 4 * 2 * 4 * 16 * (16 * 17 // 2)  # 4 b H D pairs, pairs = S(S+1)/2
    small = 2 * 4 * tokens * 64 + 5 * tokens * 128 + 2 * tokens * 64  # two norms, SiLU x up, two residuals
    floor = step_floor(case_plan(case, workload, 4), workload, RATES)
    assert floor.flops_per_gpu == 2 * (gemm + attention + small)


def test_rates_prefer_the_read_bandwidth(tmp_path: Path) -> None:
    both = HardwareProfile("NVIDIA H100 80GB HBM3", 1, ProfileParams(hbm_bw_bytes_per_s=2.7e12,
                                                                     hbm_read_bw_bytes_per_s=3.1e12,
                                                                     matmul_flops_per_s=8e14))
    copy_only = HardwareProfile("NVIDIA H100 80GB HBM3", 1, ProfileParams(hbm_bw_bytes_per_s=2.7e12))
    assert rates_from_profile(both, tmp_path / "p.json") == Rates(3.1e12, 8e14, "profile p.json: HBM read")
    assert rates_from_profile(copy_only, tmp_path / "p.json") == Rates(
        2.7e12, None, "profile p.json: HBM copy (the profile has no read figure)")


def _result(case: BenchCase, step_s: float, reference_s: float | None, graphs: bool = True) -> CaseResult:
    workload = case_workload(case, Iterations(1, 1))
    floor = step_floor(case_plan(case, workload, 2 if case.layer is G4_D64 else 4), workload, RATES)
    return CaseResult(case, "ok", graphs_used=graphs, step_s=step_s, reference_step_s=reference_s, floor=floor)


def test_goals() -> None:
    big = BenchCase(G4_D64, "decode", 128, 2048, True)  # 10.5 GB: floor 3.512 ms at 3 TB/s
    goals = {v.goal: v.met for v in verdicts(_result(big, 3.8e-3, 3.65e-3))}
    assert goals == {"reference": True, "floor": True}  # 96.1% of the reference, 92.4% of the floor
    goals = {v.goal: v.met for v in verdicts(_result(big, 4.0e-3, 3.65e-3))}
    assert goals == {"reference": False, "floor": False}  # 91.3%, 87.8%
    small = BenchCase(TINY_G2, "decode", 2, 32, True)  # far below 1 GB: no floor goal
    assert [v.goal for v in verdicts(_result(small, 1e-3, 1e-3))] == ["reference"]
    assert verdicts(_result(small, 1e-3, 1e-3, graphs=False)) == []  # eager: no goal
    short = BenchCase(TINY_G2, "prefill", 1, 2048, False)
    assert verdicts(_result(short, 1e-3, None)) == []  # prompts under 4k: no goal
    long = verdicts(_result(BenchCase(TINY_G2, "prefill", 1, 4096, False), 1.0, None))
    assert [(v.goal, v.met) for v in long] == [("matmul", False)]  # a 1 s pass of a tiny model


def test_grid_covers_the_issues_dimensions() -> None:
    cases = full_grid()
    layers = {c.layer for c in cases}
    assert {layer.head_dim for layer in layers} == {64, 128}
    assert {layer.group_size for layer in layers} == {1, 4, 8}
    assert {layer.hidden_size for layer in layers} == {2048, 4096, 8192}
    decode = [c for c in cases if c.phase == "decode"]
    assert min(c.batch for c in decode) == 1 and max(c.batch for c in decode) == 256
    assert min(c.tokens for c in decode) == 512 and max(c.tokens for c in decode) == 32768
    assert {c.graphs for c in decode} == {True, False}
    assert any(c.phase == "prefill" and c.tokens >= 4096 for c in cases)
    assert len({c.name for c in cases}) == len(cases)
    for case in cases:  # every case fits an 80 GB H100 with room to spare
        plan = case_plan(case, case_workload(case, Iterations(1, 1)), 2)
        assert plan.stages[0].footprint.total_bytes < 45e9, case.name


@pytest.mark.parametrize("layer", [TINY_MHA, TINY_G2, TINY_G4], ids=lambda layer: layer.name)
def test_reference_computes_what_the_executor_computes(layer: object) -> None:
    case = BenchCase(layer, "decode", 3, 12, True)  # type: ignore[arg-type]
    workload = case_workload(case, Iterations(1, 1))
    plan = case_plan(case, workload, 4)
    model = StageModel(plan.model, plan.stages[0].layers, 1, 0, 0, 3, 12, torch.device("cpu"), torch.float32)
    model.fill_kv_seeded(11)
    model.set_fixed_position(11)
    x = torch.randn(3, plan.model.hidden_size, generator=torch.Generator().manual_seed(0))
    expected = model.decode(x, 0)
    reference = ReferenceDecoder(model.shards, model.k_cache, model.v_cache, model.heads_local, model.kv_heads_local,
                                 model.head_dim, 11)
    torch.testing.assert_close(reference.step(x), expected, atol=1e-5, rtol=1e-5)
    assert time_reference_s(reference, x.clone(), warmup=1, iters=2, graphs=False) > 0.0  # the CPU clock path


def test_grid_command_on_cpu_writes_every_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "profile.json"
    write_profile(profile, HardwareProfile("cpu", 1, ProfileParams(hbm_bw_bytes_per_s=1e10,
                                                                   hbm_read_bw_bytes_per_s=2e10,
                                                                   matmul_flops_per_s=1e11)))
    out = tmp_path / "out"
    assert bench.main(["grid", "--out", str(out), "--device", "cpu", "--profile", str(profile),
                       "--only", "tiny-g2"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["case", "step", "ms", "of", "reference", "of", "floor", "/", "matmul",
                                               "goals"]
    record = json.loads((out / "bench-executor.json").read_text())
    assert record["rates"]["source"] == "profile profile.json: HBM read"
    cases = {c["name"]: c for c in record["cases"]}
    assert set(cases) == {"tiny-g2-decode-b2-c32-graph", "tiny-g2-decode-b2-c32-eager", "tiny-g2-prefill-b1-s32"}
    for case in cases.values():
        assert case["status"] == "ok" and case["step_s"] > 0 and not case["graphs_used"]
        assert case["of_floor"] == pytest.approx(case["floor_s"] / case["step_s"])
        by_phase = {choice["phase"]: choice for choice in case["attention"]}
        assert by_phase[case["phase"]]["path"] in by_phase[case["phase"]]["times_s"]  # GQA: measured
    decode = cases["tiny-g2-decode-b2-c32-graph"]
    assert decode["reference_step_s"] > 0 and decode["of_reference"] == pytest.approx(
        decode["reference_step_s"] / decode["step_s"])
    assert decode["floor_s"] == pytest.approx(decode["floor_bytes"] / 2e10)
    markdown = (out / "bench-executor.md").read_text()
    assert "## Decode, CUDA graphs" in markdown and "## Prefill (eager)" in markdown and "## Goals" in markdown


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["grid", "--out", str(tmp_path), "--device", "cpu", "--only", "no-such-case"]) == 2
    assert capsys.readouterr().err.strip() == (
        "bench_executor: error: --only: 'no-such-case' matches none of the 6 cases")
    assert bench.main(["runs", str(tmp_path)]) == 2
    assert "bench_executor: error: results: no GPU hardware results under" in capsys.readouterr().err
    assert not (tmp_path / "bench-executor.json").exists()


def test_attention_share_is_layers_times_the_chosen_paths_call_over_the_step() -> None:
    result = _result(BenchCase(G4_D64, "decode", 128, 2048, True), 4.0e-3, 3.65e-3)
    result.attention = [{"phase": "decode", "path": "gqa", "times_s": {"grouped": 200e-6, "gqa": 150e-6}}]
    from executor_bench.table import attention_share

    assert attention_share(result) == pytest.approx(16 * 150e-6 / 4.0e-3)  # 60%
    result.attention = [{"phase": "decode", "path": "gqa", "times_s": {}}]  # forced: not measured
    assert attention_share(result) is None
