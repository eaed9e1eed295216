"""``layerwise simulate`` and ``layerwise sweep`` end to end, in-process."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from sim_toy import toy_raw

from layerwise.cli import main
from topology.results import result_from_dict

PLANS = {"tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1, "microbatches": 1},
         "pp2": {"partitioner": "tp-pp", "tp": 1, "pp": 2, "microbatches": 2}}


@pytest.fixture
def experiment_file(tmp_path):
    raw = toy_raw(PLANS, workload={"batch_size": 4, "context_len": 32, "warmup_iters": 2, "measured_iters": 5})
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_simulate_writes_json_and_trace(experiment_file, tmp_path, capsys):
    out, trace = tmp_path / "r.json", tmp_path / "t.json"
    assert main(["simulate", str(experiment_file), "--plan", "pp2", "--json", str(out), "--trace", str(trace)]) == 0
    assert "pp2" in capsys.readouterr().out
    result = result_from_dict(json.loads(out.read_text()))
    assert result.source == "sim" and result.plan_name == "pp2" and result.metrics.tokens_per_s > 0
    events = json.loads(trace.read_text())["traceEvents"]
    threads = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert threads == {"gpu0", "gpu1"}
    categories = {e["cat"] for e in events if e["ph"] == "X"}
    assert {"compute", "communication", "idle"} <= categories
    assert any(e["name"].endswith(".qkv") for e in events if e["ph"] == "X")


def test_simulate_all_plans_writes_a_list_and_one_trace_per_plan(experiment_file, tmp_path):
    out, trace = tmp_path / "all.json", tmp_path / "trace.json"
    assert main(["simulate", str(experiment_file), "--json", str(out), "--trace", str(trace)]) == 0
    payload = json.loads(out.read_text())
    assert sorted(r["plan_name"] for r in payload) == ["pp2", "tp2"]
    assert (tmp_path / "trace.tp2.json").is_file() and (tmp_path / "trace.pp2.json").is_file()


def test_identical_inputs_give_identical_files(experiment_file, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    outputs = []
    for run in ("a", "b"):
        out, trace = tmp_path / f"{run}.json", tmp_path / f"{run}.trace.json"
        assert main(["simulate", str(experiment_file), "--plan", "tp2", "--json", str(out), "--trace", str(trace)]) == 0
        outputs.append((out.read_bytes(), trace.read_bytes()))
    assert outputs[0] == outputs[1]


def test_bad_set_is_a_one_line_error_with_exit_2(experiment_file, capsys):
    assert main(["simulate", str(experiment_file), "--set", "workload.batch_size=-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "workload.batch_size" in err
    assert main(["simulate", str(experiment_file), "--plan", "nope"]) == 2


def test_analytic_flag(experiment_file, tmp_path):
    out = tmp_path / "a.json"
    assert main(["simulate", str(experiment_file), "--plan", "tp2", "--analytic", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["simulation"]["estimator"] == "twin"


def test_sweep_writes_one_row_per_point_and_plan(experiment_file, tmp_path, capsys):
    out = tmp_path / "sweep.csv"
    code = main(["sweep", str(experiment_file), "--grid", "workload.batch_size=2,4",
                 "--grid", "workload.context_len=16,32", "--out", str(out), "--jobs", "2"])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * 2 * 2
    assert {r["plan"] for r in rows} == {"tp2", "pp2"}
    by_key = {(r["workload.batch_size"], r["workload.context_len"], r["plan"]): r for r in rows}
    assert float(by_key[("4", "32", "tp2")]["step_time_s"]) > float(by_key[("2", "16", "tp2")]["step_time_s"])
    assert "[" in capsys.readouterr().err  # the progress bar


def test_sweep_reports_points_that_cannot_run(experiment_file, tmp_path):
    out = tmp_path / "sweep.json"
    assert main(["sweep", str(experiment_file), "--grid", "workload.batch_size=3,4", "--plan", "pp2",
                 "--out", str(out), "--jobs", "1"]) == 1  # a sweep with failed points exits non-zero
    rows = json.loads(out.read_text())
    assert rows[0]["error"] and "microbatches" in rows[0]["error"] and rows[1]["error"] is None


def test_sweep_needs_a_grid(experiment_file, capsys):
    assert main(["sweep", str(experiment_file)]) == 2
    assert "--grid" in capsys.readouterr().err


def test_profile_file_moves_the_prediction(experiment_file, tmp_path):
    from sim_toy import toy_profile

    from topology.profile import write_profile

    fast, slow = tmp_path / "fast.json", tmp_path / "slow.json"
    write_profile(fast, toy_profile())
    write_profile(slow, toy_profile(hbm_bw_bytes_per_s=0.5e6, hbm_read_bw_bytes_per_s=0.5e6))
    steps = []
    for profile in (fast, slow):
        out = tmp_path / f"{profile.stem}.result.json"
        assert main(["simulate", str(experiment_file), "--plan", "pp2", "--profile", str(profile),
                     "--json", str(out)]) == 0
        steps.append(json.loads(out.read_text())["metrics"]["step_time_s"])
    assert steps[1] > 1.8 * steps[0]
