"""The executor benchmark's floor: hand-worked bytes and FLOPs per GPU per step."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from topology.experiment import build_plan, load_experiment

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_executor.py"
_SPEC = importlib.util.spec_from_file_location("bench_executor", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_executor"] = bench  # dataclasses look their module up
_SPEC.loader.exec_module(bench)

SEED_X1 = Path(__file__).resolve().parents[2] / "executor" / "suites" / "experiments" / "seed-x1.yaml"


def test_decode_floor_of_the_seed_layer_at_batch_128_context_2048() -> None:
    experiment = load_experiment(str(SEED_X1))
    plan = build_plan(experiment, "tp1")
    weights = 16 * 268_443_648 * 2  # 16 layers of 268,443,648 BF16 parameters
    kv = 16 * 128 * 2048 * 2 * 4096 * 2  # layers x sequences x context x (K, V) x width x bytes
    rates = bench.Rates(hbm_bw_bytes_per_s=3.0e12, matmul_flops_per_s=700e12, source="test")
    floor = bench.run_floor(plan, experiment.workload, rates)
    assert floor.bytes_per_gpu == weights + kv
    assert floor.floor_s == pytest.approx((weights + kv) / 3.0e12)


def test_microbatches_read_the_weights_once_each() -> None:
    experiment = load_experiment(str(SEED_X1), ["plans.tp1.microbatches=4"])
    plan = build_plan(experiment, "tp1")
    bytes_mb4, _ = bench.stage_step_cost(plan, experiment.workload, 0)
    assert bytes_mb4 == 4 * 16 * 268_443_648 * 2 + 16 * 128 * 2048 * 2 * 4096 * 2


def test_gpu_file_matches_product_names() -> None:
    assert bench.gpu_file_for("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert bench.gpu_file_for("NVIDIA H200") == "h200-sxm"
    assert bench.gpu_file_for("cpu") is None
