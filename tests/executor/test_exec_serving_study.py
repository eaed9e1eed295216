"""The GPU serving study's dry run on a CPU: the same flow (host cost, capacity probes, loads, both
policies, two models) on the tiny models, each record written beside its experiment, replayable, and
readable as a serving experiment again."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from serving.replay import replay_record
from serving.run_record import serving_record_from_dict
from serving.setup import load_serving_setup

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "device" / "serving_study.py"


def _script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("serving_study", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "serving_study", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_dry_run_writes_replayable_records(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    study = _script(monkeypatch)
    assert study.main(["--out", str(tmp_path), "--dry-run"]) == 0
    folder = tmp_path / "serving"
    summary = json.loads((folder / "summary.json").read_text())
    cases = summary["cases"]
    assert len(cases) == 14 and all(entry["status"] == "ok" for entry in cases.values()), cases
    assert all(entry["replay_identical"] for entry in cases.values())
    assert summary["host_cost"]["serving_iteration_host_s"] > 0
    assert set(summary["capacity_requests_per_s"]) == {"tiny-test/short", "tiny-test/long", "tiny-mha/short"}
    host = json.loads((folder / "host-profile.json").read_text())
    assert host["params"]["sim_params"]["serving_iteration_host_s"] == summary["host_cost"]["serving_iteration_host_s"]
    for name in ("tiny-test-long-prefill-first-medium", "tiny-mha-short-vllm-high"):
        record = serving_record_from_dict(json.loads((folder / f"{name}.json").read_text()))
        assert record.source == "measured" and record.experiment["name"] == name
        setup = load_serving_setup(str(folder / f"{name}.yaml"))  # what `layerwise simulate` reads
        assert setup.scheduler.policy == record.scheduler.policy
        assert setup.workload.num_requests == len(record.run.records)
        assert replay_record(record).identical
    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].startswith("case ") and table[-1].startswith("host cost per iteration: ")
    assert sum("identical" in line for line in table) == 14


def test_no_case_starts_past_the_wall_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study = _script(monkeypatch)
    assert study.main(["--out", str(tmp_path), "--dry-run", "--wall-s", "1", "--only", "tiny-test-short"]) == 1
    cases = json.loads((tmp_path / "serving" / "summary.json").read_text())["cases"]
    assert cases and all(entry["status"] == "not run" for entry in cases.values())
