"""``layerwise sweep`` hardening (issue 13) and its progress (issue 11, item 6)."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sim_toy import toy_profile, toy_raw

from layerwise.cli import main
from layerwise.commands import sweep as sweep_cli
from sim.inputs import ProfileChoice
from topology.profile import HardwareProfile, write_profile

PLANS = {"tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1, "microbatches": 1},
         "pp2": {"partitioner": "tp-pp", "tp": 1, "pp": 2, "microbatches": 2}}


@pytest.fixture
def experiment_file(tmp_path: Path) -> Path:
    raw = toy_raw(PLANS, workload={"batch_size": 4, "context_len": 32, "warmup_iters": 1, "measured_iters": 2})
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize("jobs", ["0", "-3", "many"])
def test_jobs_must_be_positive(experiment_file: Path, capsys: pytest.CaptureFixture[str], jobs: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(experiment_file), "--grid", "workload.batch_size=2", f"--jobs={jobs}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"argument --jobs: must be a positive integer, got '{jobs}'" in err


@pytest.mark.parametrize(("grid", "message"), [
    ("plans.b.microbatches=1,2", "--grid plans.b.microbatches=1: plans.b.microbatches: no plan 'b' to change"),
    ("workload.batch_size=8,-1,abc", "--grid workload.batch_size=-1: workload.batch_size: must be a positive"),
    ("plans.pp2.microbatches=2,0", "--grid plans.pp2.microbatches=0: plans.pp2.microbatches: must be a positive"),
])
def test_bad_grid_values_are_refused_before_any_point_runs(experiment_file: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str], grid: str,
                                                           message: str) -> None:
    out = tmp_path / "s.csv"
    assert main(["sweep", str(experiment_file), "--grid", grid, "--out", str(out), "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"layerwise sweep: error: {message}"), err
    assert not out.exists()


def test_an_unwritable_out_is_refused_before_any_point_runs(experiment_file: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", str(experiment_file), "--grid", "workload.batch_size=2,4",
                 "--out", "/proc/nope/s.csv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("layerwise sweep: error: --out: cannot write '/proc/nope/s.csv'")


def test_failed_points_exit_1_with_their_count_and_reasons(experiment_file: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.csv"
    # microbatches=2 (pp2) does not divide batch 3 or 5; every tp2 point and pp2 at batch 4 run
    code = main(["sweep", str(experiment_file), "--grid", "workload.batch_size=3,4,5", "--out", str(out),
                 "--jobs", "1"])
    assert code == 1
    rows = list(csv.DictReader(out.open()))
    assert [(r["workload.batch_size"], r["plan"]) for r in rows] == [  # grid order (the file lists pp2 first)
        ("3", "pp2"), ("3", "tp2"), ("4", "pp2"), ("4", "tp2"), ("5", "pp2"), ("5", "tp2")]
    assert [bool(r["error"]) for r in rows] == [True, False, False, False, True, False]
    err = capsys.readouterr().err.splitlines()
    start = err.index("layerwise sweep: error: 2 of 6 points failed (each row holds its error):")
    assert err[start + 1:] == [
        "  workload.batch_size=3 plan=pp2: plan.microbatches: microbatches=2 does not divide batch_size=3",
        "  workload.batch_size=5 plan=pp2: plan.microbatches: microbatches=2 does not divide batch_size=5",
    ]


def test_progress_line_shows_eta_and_the_point() -> None:
    row: dict[str, Any] = {"workload.batch_size": "4", "plan": "pp2", "tokens_per_s": 12345.6,
                           "step_time_s": 0.0025, "error": None}
    # 2 of 8 done in 3 s: 1.5 s a point, 6 left, so 9 s to go
    assert sweep_cli.progress_line(2, 8, 3.0, row, ["workload.batch_size"]) == (
        "[2/8]  25%  3.0 s, eta 9.0 s  workload.batch_size=4 plan=pp2: 12,346 tokens/s, step 2.500 ms")
    failed = {**row, "error": "plan.microbatches: nope"}
    assert sweep_cli.progress_line(10, 10, 150.0, failed, ["workload.batch_size"]) == (
        "[10/10] 100%  2 min 30 s, eta 0.0 s  workload.batch_size=4 plan=pp2: failed: plan.microbatches: nope")


def _slow_first(task: sweep_cli.Task) -> tuple[int, dict[str, Any]]:
    if task.index == 0:
        time.sleep(0.6)
    row = {**dict(task.point), "plan": task.plan_name, "tokens_per_s": float(task.index), "step_time_s": 1.0,
           "error": None}
    return task.index, row


def test_progress_follows_completion_order_and_rows_keep_grid_order(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sweep_cli, "run_point", _slow_first)  # forked workers see the patched function
    tasks = [sweep_cli.Task(i, "toy", (), (("k", str(i)),), "p", True, ProfileChoice()) for i in range(3)]
    rows = sweep_cli.run_tasks(tasks, jobs=2, keys=["k"])
    assert [row["k"] for row in rows] == ["0", "1", "2"]
    finished = [line.split("  ")[-1] for line in capsys.readouterr().err.splitlines()]
    assert finished[-1].startswith("k=0 plan=p") and len(finished) == 3  # the slow first point ends last


def test_a_profile_of_another_gpu_is_refused_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_profile(tmp_path / "cpu.json", HardwareProfile(gpu_name="cpu", gpu_count=1, params=toy_profile().params))
    raw = {**toy_raw(PLANS, workload={"batch_size": 2}), "profile": "cpu.json"}
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(raw))
    argv = ["sweep", str(tmp_path / "exp.yaml"), "--grid", "workload.batch_size=2,4", "--jobs", "1", "--analytic"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "measured on 'cpu'" in err and "H100-SXM5-80GB" in err
    assert main([*argv, "--force-profile"]) == 0
