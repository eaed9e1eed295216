"""``--compare-leases``: runs of other leases beside the fitted runs of the same entry, never fitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from topology.experiment import build_plan, load_experiment
from topology.results import HardwareDetails, Metrics, RunResult, write_result
from validate.crossval import Outcome
from validate.leases import compare_leases, entry_key, lease_spreads
from validate.measured import Measurement, load_measurements
from validate.prediction import Prediction


def _write(path: Path, step_s: float, overrides: list[str], gpu_name: str = "NVIDIA H100 80GB HBM3",
           commit: str = "abcdef0123") -> None:
    experiment = load_experiment("small-h100x1", overrides)
    plan = build_plan(experiment, "plan")
    write_result(path, RunResult(source="hardware", experiment=experiment.to_dict(), plan_name="plan",
                                 plan=plan.to_dict(), metrics=Metrics(
                                     64 / step_s, step_s, step_s, None, plan.microbatches, plan.describe(),
                                     hardware=HardwareDetails(backend="nccl", cuda_graphs=True, dtype="bfloat16",
                                                              kv_fill="seeded", kv_capacity_tokens=128,
                                                              sdpa_backend="auto", communication_timing="eager")),
                                 environment={"gpu_name": gpu_name, "git_commit": commit}))


def _outcome(m: Measurement, predicted_s: float) -> Outcome:
    p = Prediction(step_time_s=predicted_s, tokens_per_s=1.0)
    return Outcome(m, 0, p, p, p, p)


def test_an_entry_recorded_from_another_cluster_file_is_the_same_entry(tmp_path: Path) -> None:
    """An older H200 lease ran the H100 experiment file on an H200: its plan carries the H100's device
    figures, so it is another configuration to the fitter, but the same entry to compare."""
    _write(tmp_path / "old" / "a.json", 1e-3, [], gpu_name="NVIDIA H200")
    _write(tmp_path / "new" / "a.json", 1e-3, ["cluster=h200x1"], gpu_name="NVIDIA H200")
    _write(tmp_path / "new" / "b.json", 1e-3, ["cluster=h200x1", "plan.microbatches=2"], gpu_name="NVIDIA H200")
    old, new, other_plan = load_measurements([str(tmp_path / "old")]) + load_measurements([str(tmp_path / "new")])
    assert old.config_key != new.config_key
    assert entry_key(old) == entry_key(new) != entry_key(other_plan)


def test_differences_and_held_out_error_on_the_other_lease(tmp_path: Path) -> None:
    _write(tmp_path / "v2" / "a.json", 10e-3, [])
    _write(tmp_path / "v2" / "b.json", 4e-3, ["workload.batch_size=8"])
    _write(tmp_path / "v1" / "a.json", 12.5e-3, [], commit="1234567890")
    _write(tmp_path / "v1" / "b.json", 3e-3, ["workload.batch_size=8"], commit="1234567890")
    _write(tmp_path / "v1" / "c.json", 1e-3, ["workload.batch_size=16"], commit="1234567890")
    a, b = load_measurements([str(tmp_path / "v2")])
    others = load_measurements([str(tmp_path / "v1")])
    comparisons, unmatched = compare_leases((_outcome(a, 11e-3), _outcome(b, 4e-3)), others)
    assert unmatched == ("v1/c",)  # batch 16 was not fitted
    by_key = {c.other.key: c for c in comparisons}
    assert by_key["v1/a"].difference == pytest.approx(0.25)  # 12.5 against 10 ms
    assert by_key["v1/a"].held_out_error == pytest.approx(-0.12)  # 11 predicted against 12.5 measured
    assert by_key["v1/b"].difference == pytest.approx(-0.25)  # 3 against 4 ms
    assert by_key["v1/b"].held_out_error == pytest.approx(1 / 3)
    (spread,) = lease_spreads(comparisons)
    assert (spread.regime, spread.lease, spread.runs, spread.commits) == ("decode-graph", "v1", 2, ("1234567",))
    assert spread.median_difference == pytest.approx(0.25) and spread.max_difference == pytest.approx(0.25)
    assert spread.held_out_mape == pytest.approx((0.12 + 1 / 3) / 2)
