"""Per-rank timings -> Metrics, and torchrun failure summaries -> one line (pure)."""

from __future__ import annotations

import pytest

from executor.launch import describe_failure
from executor.results import build_metrics, rank_record
from topology.experiment import build_plan, load_experiment
from topology.results import HardwareDetails


def test_metrics_from_records() -> None:
    experiment = load_experiment("tiny-cpu")
    plan = build_plan(experiment, "tp2pp2")  # stages (0, 1) and (2, 3); batch 8; 2 layers per stage
    records = [
        rank_record(r, r // 2, elapsed_s=0.4 if r else 0.5, measured_iters=10, forward_s=0.2, wait_s=0.1,
                    allreduce_s=0.001, allreduces_per_iter=8)
        for r in range(4)
    ]
    hardware = HardwareDetails(backend="gloo", cuda_graphs=False, dtype="float32", kv_fill="seeded",
                               kv_capacity_tokens=16, sdpa_backend="auto", communication_timing="eager")
    metrics = build_metrics(plan, experiment.workload, records, hardware)
    assert metrics.step_time_s == pytest.approx(0.05)
    assert metrics.tokens_per_s == pytest.approx(8 / 0.05)
    assert metrics.tpot_s == pytest.approx(0.05) and metrics.ttft_s is None

    stage = metrics.stages[0]
    assert stage.communication_s == pytest.approx(0.008)
    assert stage.compute_s == pytest.approx(0.02 - 0.008)
    assert stage.idle_s == pytest.approx(0.05 - 0.02)
    assert metrics.hardware is not None
    assert metrics.hardware.backend == "gloo" and len(metrics.hardware.ranks) == 4
    assert metrics.hardware.ranks[0].step_time_s == pytest.approx(0.05)


TORCHRUN_SUMMARY = """\
executor: failed: rank 0 (stage 0, gpu0) while receiving its input: Connection reset by peer
Failures:
[1]:
  time      : 2026-11-23_17:30:00
  rank      : 0 (local_rank: 0)
  exitcode  : 3 (pid: 11)
Root Cause (first observed failure):
[0]:
  rank      : 1 (local_rank: 1)
  exitcode  : 17 (pid: 12)
"""


def test_a_dead_rank_is_named_before_its_peers_reports() -> None:
    plan = build_plan(load_experiment("tiny-cpu"), "pp2")
    line = describe_failure(plan, TORCHRUN_SUMMARY.splitlines(), 1)
    assert line == "failed: rank 1 (stage 1, gpu1) died (killed by fault injection)"


def test_a_reported_failure_is_passed_through() -> None:
    plan = build_plan(load_experiment("tiny-cpu"), "pp2")
    lines = TORCHRUN_SUMMARY.replace("17 (pid: 12)", "3 (pid: 12)").splitlines()
    assert describe_failure(plan, lines, 1).startswith("failed: rank 0 (stage 0, gpu0) while receiving")
