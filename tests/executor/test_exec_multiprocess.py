"""Several gloo processes under torchrun, float32, the tiny model: every plan computes what one
process computes; bad plans are refused before any process group; a killed rank ends the run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from executor.launch import launch_env
from layerwise.cli import main as layerwise_main

EXPERIMENT = str(Path(__file__).resolve().parents[2] / "examples" / "tiny-cpu.yaml")
REFERENCE = "plans.ref={partitioner: tp-pp, tp: 1, pp: 1, microbatches: 1}"
EIGHT_RANKS = [
    "cluster={name: cpu8, nodes: 1, gpus_per_node: 8, gpu: h100-sxm, intra_node_link: nvlink4}",
    "plans.tp2pp4={partitioner: tp-pp, tp: 2, pp: 4, microbatches: 4}",
]
GROW = ["workload.context_growth=grow", "workload.measured_iters=4"]
ATOL = 1e-4

pytestmark = pytest.mark.slow


def _run(tmp: Path, plan: str, overrides: list[str], *extra: str) -> dict[str, torch.Tensor]:
    dump = tmp / f"{plan}.pt"
    args = ["run", EXPERIMENT, "--plan", plan, "--fill", "prefill", "--dump-outputs", str(dump),
            "--json", str(tmp / f"{plan}.json"), "--timeout-s", "30", *extra]
    for override in overrides:
        args += ["--set", override]
    assert layerwise_main(args) == 0
    assert (tmp / f"{plan}.json").is_file()
    return dict(torch.load(dump))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    return _run(tmp_path_factory.mktemp("ref"), "ref", [REFERENCE])


@pytest.mark.parametrize(("plan", "attention"), [("tp2", "auto"), ("pp2", "auto"), ("tp2pp2", "auto"),
                                                  ("layer-wise", "auto"), ("tp2pp2", "matmul")])
def test_plan_matches_single_process(
    plan: str, attention: str, reference: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    trace = ("--trace", str(tmp_path / "trace.json")) if plan == "pp2" else ()
    outputs = _run(tmp_path, plan, [], *trace, "--sdpa-backend", attention)
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
