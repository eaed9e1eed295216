"""``layerwise capacity`` end to end: the ranked table, the best deployment's plan file and vllm command,
--json and --plot; the fewest-GPUs objective; and bad input as one line, a non-zero exit, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from capacity_cases import EXPERIMENT

from layerwise.cli import main
from topology.plan import load_plan_json

SMALL_SPACE = ["--gpu-budget", "2", "--max-num-seqs", "16", "--max-num-batched-tokens", "512", "--chunked", "on",
               "--uneven", "0", "--resolution", "0.1", "--jobs", "1"]


@pytest.mark.slow
def test_the_cli_ranks_writes_the_plan_json_plot_and_the_vllm_command(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = ["--json", str(tmp_path / "cap.json"), "--plot", str(tmp_path / "cap.png"),
           "--out", str(tmp_path / "best.json")]
    assert main(["capacity", EXPERIMENT, *SMALL_SPACE, "--slo", "ttft_p99_ms=20", "--slo", "tpot_p90_ms=4", *out]) == 0
    text = capsys.readouterr().out
    assert "req/s" in text and "per GPU" in text and "p99 TTFT ms" in text and "BEST" in text
    assert "vllm serve tiny-test --tensor-parallel-size 1 --pipeline-parallel-size 1" in text
    result = json.loads((tmp_path / "cap.json").read_text())
    assert result["schema_version"] == 1 and result["objective"]["kind"] == "rate-per-gpu"
    assert [s["flag"] for s in result["slos"]] == ["ttft_p99_ms=20", "tpot_p90_ms=4"]
    best = result["ranked"][0]
    assert best["rank"] == 1 and best["status"] == "resolved" and best["capacity_per_s"] > 0
    assert best["at_capacity_latencies_s"]["ttft_p99"] <= 0.02
    plan = load_plan_json(tmp_path / "best.json")
    assert plan.num_devices * best["replicas"] == best["gpus"]
    assert (tmp_path / "cap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_fewest_gpus_at_a_rate(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["capacity", EXPERIMENT, *SMALL_SPACE, "--rate", "500"]) == 0
    text = capsys.readouterr().out
    assert "the fewest GPUs that meet the SLOs at 500 requests/s" in text
    assert "BEST" in text and " on 2 GPUs" in text  # one GPU cannot serve 500 requests/s of this workload


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layerwise", "capacity", *args, "--json", "out.json"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize(("args", "says"), [
    (["--slo", "latency_p99_ms=10"], "unknown metric 'latency'"),
    (["--slo", "ttft_p95_ms=10"], "unknown percentile 'p95'"),
    (["--slo", "ttft_p99_ms=-10"], "must be a finite number > 0"),
    (["--slo", "ttft_p99_ms=nan"], "must be a finite number > 0"),
    (["--gpu-budget", "0"], "--gpu-budget: must be a positive integer"),
    (["--rate", "-3"], "--rate: must be a finite number"),
    (["--ray", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, args: list[str], says: str) -> None:
    started = time.perf_counter()
    out = _cli(tmp_path, EXPERIMENT, *args)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert not (tmp_path / "out.json").exists()
    assert time.perf_counter() - started < 60


def test_a_budget_below_one_replica_says_how_many_gpus_one_needs(tmp_path: Path) -> None:
    experiment = tmp_path / "big.yaml"
    experiment.write_text(json.dumps({
        "model": "llama3-70b", "cluster": "h100x8",
        "workload": {"phase": "serve", "num_requests": 50, "arrivals": {"kind": "poisson", "rate_per_s": 1},
                     "prompt_tokens": {"kind": "fixed", "tokens": 100},
                     "output_tokens": {"kind": "fixed", "tokens": 10}},
        "slo": {"ttft": {"p99": 2.0}}, "plans": {"tp8": {"partitioner": "tp-pp", "tp": 8, "pp": 1}}}))
    out = _cli(tmp_path, str(experiment), "--gpu-budget", "1")
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "--gpu-budget: 1 GPU is below one replica: the smallest plan of llama3-70b needs 2 GPUs" in lines[0]


def test_a_closed_loop_or_a_fixed_batch_experiment_is_refused(tmp_path: Path) -> None:
    out = _cli(tmp_path, EXPERIMENT, "--set", "workload.arrivals={kind: closed_loop, users: 4}")
    assert out.returncode == 2 and "closed loop has no request rate" in out.stderr
    out = _cli(tmp_path, "small-h100x1")
    assert out.returncode == 2 and "not a serving workload" in out.stderr
