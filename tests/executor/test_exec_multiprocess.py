"""Several gloo processes under torchrun, float32, the tiny model (GQA: 4 heads on 2 KV heads) and its
MHA twin: every plan computes what one process computes, whichever attention path runs (KV heads split
across TP ranks); bad plans are refused before any process group; a killed rank ends the run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from executor.launch import launch_env
from layerwise.cli import main as layerwise_main

EXPERIMENT = str(Path(__file__).resolve().parents[2] / "examples" / "tiny-cpu.yaml")
REFERENCE = "plans.ref={partitioner: tp-pp, tp: 1, pp: 1, microbatches: 1}"
MODELS = {
    "gqa": [],  # tiny-test: 4 heads of 16 on 2 KV heads
    "mha": ["model={name: tiny-mha, num_layers: 4, hidden_size: 64, num_heads: 4, num_kv_heads: 4, "
            "head_dim: 16, mlp_hidden_size: 128, dtype_bytes: 4}"],
}
EIGHT_RANKS = [
    "cluster={name: cpu8, nodes: 1, gpus_per_node: 8, gpu: h100-sxm, intra_node_link: nvlink4}",
    "plans.tp2pp4={partitioner: tp-pp, tp: 2, pp: 4, microbatches: 4}",
]
GROW = ["workload.context_growth=grow", "workload.measured_iters=4"]
ATOL = 1e-4

pytestmark = pytest.mark.slow


def _run(tmp: Path, plan: str, overrides: list[str], *extra: str) -> dict[str, torch.Tensor]:
    return _run_with_result(tmp, plan, overrides, *extra)[0]


def _run_with_result(tmp: Path, plan: str, overrides: list[str], *extra: str
                     ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    dump = tmp / f"{plan}.pt"
    args = ["run", EXPERIMENT, "--plan", plan, "--fill", "prefill", "--dump-outputs", str(dump),
            "--json", str(tmp / f"{plan}.json"), "--timeout-s", "30", *extra]
    for override in overrides:
        args += ["--set", override]
    assert layerwise_main(args) == 0
    result = json.loads((tmp / f"{plan}.json").read_text())
    return dict(torch.load(dump)), result


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, torch.Tensor]]:
    """The single-process run of each model (attention paths measured at start-up)."""
    return {model: _run(tmp_path_factory.mktemp(f"ref-{model}"), "ref", [REFERENCE, *overrides])
            for model, overrides in MODELS.items()}


# (model, plan, options, the decode and prefill paths that must have run: None = measured, any).
# Four stages (and measured GQA paths) are covered by test_eight_ranks_growing_context (TP2xPP4).
CASES = [
    ("gqa", "tp2", ("--decode-attention", "grouped", "--prefill-attention", "expand"), ("grouped", "expand")),
    ("gqa", "pp2", ("--decode-attention", "gqa", "--prefill-attention", "gqa"), ("gqa", "gqa")),
    ("gqa", "tp2pp2", ("--sdpa-backend", "matmul"), ("matmul", None)),
    ("mha", "tp2", (), (None, "gqa")),
    ("mha", "pp2", ("--decode-attention", "matmul"), ("matmul", "gqa")),
    ("mha", "tp2pp2", ("--decode-attention", "grouped"), ("grouped", "gqa")),
]


@pytest.mark.parametrize(("model", "plan", "options", "paths"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_plan_matches_single_process(
    model: str, plan: str, options: tuple[str, ...], paths: tuple[str | None, str | None],
    references: dict[str, dict[str, torch.Tensor]], tmp_path: Path,
) -> None:
    reference = references[model]
    trace = ("--trace", str(tmp_path / "trace.json")) if (model, plan) == ("gqa", "pp2") else ()
    outputs, result = _run_with_result(tmp_path, plan, MODELS[model], *trace, *options)
    attention = result["environment"]["attention"]
    for phase, path in zip(("decode", "prefill"), paths, strict=True):
        if path is not None:  # the path the options forced
            assert attention[phase]["path"] == path
        else:  # measured at start-up: the chosen path is one of those timed
            assert attention[phase]["how"].startswith("measured at start-up")
            assert attention[phase]["path"] in attention[phase]["times_s"]
    if trace:
        assert (tmp_path / "trace.rank0.json").is_file() and (tmp_path / "trace.rank1.json").is_file()
    assert outputs["prefill"].shape == reference["prefill"].shape == (8, 15, 64)  # (B, context - 1, h)
    assert outputs["decode"].shape == reference["decode"].shape == (4, 8, 64)  # (iterations, B, h)
    torch.testing.assert_close(outputs["prefill"], reference["prefill"], atol=ATOL, rtol=ATOL)
    torch.testing.assert_close(outputs["decode"], reference["decode"], atol=ATOL, rtol=ATOL)
    assert not torch.allclose(outputs["decode"][0], outputs["decode"][-1])  # the closed loop moves on


def test_eight_ranks_growing_context(tmp_path: Path) -> None:
    reference = _run(tmp_path, "ref", [REFERENCE, *GROW])
    outputs = _run(tmp_path, "tp2pp4", [*EIGHT_RANKS, *GROW])
    assert outputs["decode"].shape == (5, 8, 64)
    torch.testing.assert_close(outputs["decode"], reference["decode"], atol=ATOL, rtol=ATOL)


def test_bad_plan_is_refused_before_launch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert layerwise_main(["run", EXPERIMENT, "--plan", "pp2", "--set", "plans.pp2.microbatches=3"]) == 2
    assert "microbatches=3 does not divide batch_size=8" in capsys.readouterr().err
    assert layerwise_main(["run", EXPERIMENT, "--plan", "pp2", "--sdpa-backend", "matmul",
                           "--decode-attention", "gqa"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "layerwise run: error: --decode-attention: gqa contradicts --sdpa-backend matmul (the matmul decode path)")
    if not torch.cuda.is_available():
        assert layerwise_main(["run", EXPERIMENT, "--plan", "tp2pp2", "--backend", "nccl"]) == 2
        assert "needs 4 GPUs on this host, it has 0" in capsys.readouterr().err


def test_world_size_mismatch_is_refused_before_process_groups(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "executor", EXPERIMENT, "--plan", "tp2pp2", "--json", str(tmp_path / "r.json")]
    done = subprocess.run(command, capture_output=True, text=True, env=launch_env(), timeout=120, check=False)
    assert done.returncode != 0
    assert "executor: error: plan.devices: plan tp-pp TP2xPP2 mb=2 needs 4 processes" in done.stderr
    assert "init_process_group" not in done.stderr and not (tmp_path / "r.json").exists()


def test_killed_rank_ends_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    rc = layerwise_main(["run", EXPERIMENT, "--plan", "tp2pp2", "--fault", "kill:3:2", "--timeout-s", "20",
                         "--json", str(tmp_path / "r.json")])
    assert rc == 1
    assert time.perf_counter() - started < 20 + 60  # the rank timeout plus start-up
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "layerwise run: failed: rank 3 (stage 1, gpu3) died (killed by fault injection)"
    assert not (tmp_path / "r.json").exists()


def test_hung_rank_ends_the_run_within_the_timeout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    rc = layerwise_main(["run", EXPERIMENT, "--plan", "pp2", "--fault", "hang:1:2", "--timeout-s", "5",
                         "--json", str(tmp_path / "r.json")])
    assert rc == 1
    assert time.perf_counter() - started < 5 + 60
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("layerwise run: failed: rank 0 (stage 0, gpu0) while receiving")
    assert "from rank 1 (stage 1)" in err
    assert not (tmp_path / "r.json").exists()
