"""The suite runner: entries expand by mode, a failing entry is recorded and the suite goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from executor.suite import format_table, load_suite, main
from topology.results import load_result

EXPERIMENT = Path(__file__).resolve().parents[2] / "examples" / "tiny-cpu.yaml"
SUITES = Path(__file__).resolve().parents[2] / "executor" / "suites"


def test_modes_expand_and_names_are_checked(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(f"entries:\n  - {{name: a, experiment: {EXPERIMENT}, modes: [graph, eager]}}\n")
    name, entries = load_suite(suite)
    assert name == "s" and [e.name for e in entries] == ["a-graph", "a-eager"]
    assert entries[1].overrides == ("workload.cuda_graphs=false",)


@pytest.mark.parametrize("suite", ["gpu-single", "gpu-2", "gpu-4", "gpu-8", "cpu-tiny"])
def test_shipped_suites_load(suite: str) -> None:
    _, entries = load_suite(SUITES / f"{suite}.yaml")
    assert entries and all(Path(e.experiment).is_file() for e in entries)


@pytest.mark.slow
def test_suite_runs_past_a_failing_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: t\nentries:\n"
        f"  - {{name: bad, experiment: {EXPERIMENT}, plan: pp2, set: [plans.pp2.microbatches=3]}}\n"
        f"  - {{name: good, experiment: {EXPERIMENT}, plan: pp2}}\n"
    )
    assert main([str(suite), "--out", str(tmp_path / "out")]) == 1
    summary = json.loads((tmp_path / "out" / "suite-summary.json").read_text())
    assert [e["status"] for e in summary["entries"]] == ["failed", "ok"]
    assert "does not divide batch_size=8" in (tmp_path / "out" / "bad.error.txt").read_text()
    result = load_result(tmp_path / "out" / "good.json")
    assert result.source == "hardware" and result.plan_name == "pp2" and result.metrics.tokens_per_s > 0
    assert "good" in capsys.readouterr().out


@pytest.mark.slow
def test_suite_wide_overrides_and_traces(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: t\nentries:\n  - {{name: traced, experiment: {EXPERIMENT}, plan: pp2, trace: true}}\n")
    assert main([str(suite), "--out", str(tmp_path / "out"), "--set", "workload.measured_iters=2"]) == 0
    result = load_result(tmp_path / "out" / "traced.json")
    assert result.experiment["workload"]["measured_iters"] == 2
    trace = json.loads((tmp_path / "out" / "traced.pt.trace.json").read_text())  # rank 0's, renamed
    assert trace["traceEvents"]


def test_table_lists_every_entry() -> None:
    from executor.suite import EntryOutcome

    table = format_table([EntryOutcome("x", "ok", 1.0, metrics={"tokens_per_s": 10.0, "step_time_s": 0.1,
                                                                 "tpot_s": 0.1}),
                          EntryOutcome("y", "failed", 1.0, "boom")])
    assert "10.0" in table and "100.000" in table and "y" in table


def test_a_failing_entry_leaves_no_earlier_result(tmp_path: Path) -> None:
    from executor.suite import run_entry

    suite = tmp_path / "s.yaml"
    suite.write_text(f"entries:\n  - {{name: bad, experiment: {EXPERIMENT}, plan: pp2, "
                     "set: [plans.pp2.microbatches=3]}\n")
    _, entries = load_suite(suite)
    out = tmp_path / "out"
    out.mkdir()
    (out / "bad.json").write_text("{}")  # a result of an earlier run of this entry
    (out / "bad.pt.trace.json").write_text("{}")
    outcome = run_entry(entries[0], out, "gloo", None)
    assert outcome.status == "failed" and "does not divide batch_size=8" in str(outcome.error)
    assert not (out / "bad.json").exists() and not (out / "bad.pt.trace.json").exists()


@pytest.mark.parametrize(("field", "value"), [("fill", "zeros"), ("sdpa_backend", "fast")])
def test_bad_entry_options_are_refused_when_loading(tmp_path: Path, field: str, value: str) -> None:
    from topology.errors import LayerwiseError

    suite = tmp_path / "s.yaml"
    suite.write_text(f"entries:\n  - {{name: a, experiment: {EXPERIMENT}, {field}: {value}}}\n")
    with pytest.raises(LayerwiseError, match=f"entries\\[0\\].{field}"):
        load_suite(suite)


def test_bad_only_pattern_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(f"entries:\n  - {{name: a, experiment: {EXPERIMENT}}}\n")
    assert main([str(suite), "--out", str(tmp_path / "out"), "--only", "("]) == 2
    err = capsys.readouterr().err
    assert err.startswith("executor.suite: error: --only") and len(err.strip().splitlines()) == 1
