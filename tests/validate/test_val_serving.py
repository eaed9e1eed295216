"""Serving validation: the host fit recovers known host parameters from synthetic measured runs, the
per-layer host terms enter an eager iteration's price exactly, the capacity bracket and its error by hand,
the bisection against brute force, and the command end to end (report files, bad input)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from serving.batch import DECODE, IterationPlan, PlanItem
from serving.driver import run_serving
from serving.run_record import ServingRunRecord
from serving.setup import serving_setup_from_dict
from serving.sources import request_source
from sim.inputs import basis_of, given_profile
from sim.serving.run import iteration_pricer
from topology.experiment import build_plan
from validate.prediction import with_sim_params
from validate.serving.capacity import MeasuredCapacity, bisect_capacity, capacity_error, ladders
from validate.serving.host_fit import fit_host
from validate.serving.runs import MeasuredServing, load_serving_runs, price_fn

REPO = Path(__file__).resolve().parents[2]
GPU = "NVIDIA H100 80GB HBM3"
RAW = {
    "name": "small-serve", "model": "small-1024", "cluster": "h100x1",
    "workload": {"phase": "serve", "seed": 5, "num_requests": 60, "arrivals": {"kind": "poisson", "rate_per_s": 30},
                 "prompt_tokens": {"kind": "uniform", "low_tokens": 32, "high_tokens": 256},
                 "output_tokens": {"kind": "uniform", "low_tokens": 8, "high_tokens": 48}},
    "scheduler": {"max_num_batched_tokens": 512, "max_num_seqs": 16, "max_model_len_tokens": 1024,
                  "cuda_graph_sizes": []},
    "plans": {"tp1": {"partitioner": "tp-pp", "tp": 1, "pp": 1}},
}
HOST = {"serving_iteration_host_s": 3e-4, "serving_layer_host_s": 1.2e-4, "serving_seq_layer_host_s": 7e-6}


def _basis(setup, host: dict[str, float]):  # type: ignore[no-untyped-def]
    return basis_of(setup.experiment, given_profile(with_sim_params(None, host, GPU)), force=True)


def _measured(rate_per_s: float, host: dict[str, float], name: str) -> MeasuredServing:
    """A 'measured' run whose iterations took exactly what the simulator prices (eagerly) with ``host``."""
    raw = json.loads(json.dumps(RAW))
    raw["name"] = name
    raw["workload"]["arrivals"]["rate_per_s"] = rate_per_s
    setup = serving_setup_from_dict(raw)
    plan = build_plan(setup.experiment, "tp1")
    config = setup.scheduler_for(plan)
    run = run_serving(request_source(setup.workload), config, iteration_pricer(_basis(setup, host), plan))
    record = ServingRunRecord(source="measured", experiment=raw, plan=plan.to_dict(), scheduler=config, run=run,
                              environment={"gpu_name": GPU, "serving": {
                                  "cuda_graphs": {"captured_sizes": []},
                                  "host_s_per_iteration": {"count": len(run.iterations),
                                                           "mean": host["serving_iteration_host_s"]}}})
    return MeasuredServing(name, setup, plan, record)


def test_the_host_terms_enter_an_iteration_by_hand() -> None:
    """small-1024 has 16 layers: 5 decodes run eagerly pay 300 us + 16 x (120 + 5 x 7) us = 2780 us more
    than the device alone; replayed from a graph, the 300 us only."""
    setup = serving_setup_from_dict(RAW)
    plan = build_plan(setup.experiment, "tp1")
    assert setup.experiment.model.num_layers == 16
    items = tuple(PlanItem(i, DECODE, 1, 200, True) for i in range(5))
    eager = IterationPlan(0, 0.0, items, padded_tokens=8, cuda_graph=False)
    with_host = iteration_pricer(_basis(setup, HOST), plan)
    device = iteration_pricer(_basis(setup, dict.fromkeys(HOST, 0.0)), plan)
    assert with_host(eager) - device(eager) == pytest.approx(2780e-6, rel=1e-9)
    graphed = dataclasses.replace(eager, cuda_graph=True)
    assert with_host(graphed) - device(graphed) == pytest.approx(300e-6, rel=1e-9)
    run = _measured(30.0, HOST, "x")  # an engine without graphs: every iteration priced eagerly
    assert price_fn(run, _basis(setup, HOST))(graphed) == pytest.approx(with_host(eager), rel=1e-12)


def test_the_fit_recovers_known_host_parameters() -> None:
    """Runs whose iterations took the simulator's price with known host terms: the fit finds them back (one
    model: the per-iteration term is the engine's recorded host time outside the forward)."""
    runs = [_measured(rate, HOST, f"r{rate:g}") for rate in (10.0, 40.0)]
    fit = fit_host(runs, None)
    for name, value in HOST.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-6, abs=1e-12), name
    assert fit.mean_abs_residual_s < 1e-9
    assert fit.iterations == sum(len(run.record.run.iterations) for run in runs)


def test_capacity_error_by_hand() -> None:
    bracket = MeasuredCapacity(6.5, 7.8, ((5.0, True), (6.5, True), (7.8, False)))
    assert capacity_error(7.0, bracket) == 0.0
    assert capacity_error(13.0, bracket) == pytest.approx(13.0 / 7.8 - 1.0)
    assert capacity_error(5.2, bracket) == pytest.approx(-0.2)
    assert capacity_error(100.0, MeasuredCapacity(6.5, None, ())) == 0.0  # every rate met: no upper end
    assert capacity_error(3.0, MeasuredCapacity(None, 5.0, ())) is None


@pytest.mark.parametrize("threshold", [1.0, 2.7, 5.0, 19.99])
def test_bisection_finds_the_threshold_to_one_percent(threshold: float) -> None:
    asked: list[float] = []

    def meets(rate: float) -> bool:
        asked.append(rate)
        return rate <= threshold

    found = bisect_capacity(meets, 0.5, 20.0)
    assert found is not None and found <= threshold < found * 1.01 + 1e-12
    assert len(asked) <= 2 + math.ceil(math.log(40) / math.log(1.01 ** 0.5) / 10) + 12
    assert bisect_capacity(lambda rate: False, 0.5, 20.0) is None
    assert bisect_capacity(lambda rate: True, 0.5, 20.0) == 20.0


def test_ladders_group_runs_of_one_workload_by_rate() -> None:
    runs = [_measured(rate, HOST, f"r{rate:g}") for rate in (20.0, 10.0, 30.0)]
    other = _measured(15.0, HOST, "other")
    other.record.experiment["scheduler"]["max_num_seqs"] = 8
    found = ladders([*runs, other])
    assert [[r.name for r in ladder] for ladder in found] == [["r10", "r20", "r30"]]


def _write(folder: Path, run: MeasuredServing) -> None:
    (folder / f"{run.name}.json").write_text(json.dumps(run.record.to_dict()), encoding="utf-8")


def test_the_command_writes_its_report(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    for rate in (10.0, 20.0, 40.0):
        _write(folder, _measured(rate, HOST, f"small-{rate:g}"))
    (folder / "summary.json").write_text("{}", encoding="utf-8")  # not a run: skipped
    out = tmp_path / "report"
    argv = ["validate-serving", str(folder), "--datasheet", "--fit", "small-10$", "--slo", "tpot_p99_ms=50",
            "--out", str(out)]
    done = subprocess.run([sys.executable, "-m", "layerwise", *argv], capture_output=True, text=True, cwd=REPO,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert load_serving_runs(str(folder))[0].name == "small-10"
    found = json.loads((out / "serving-validation.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in found["held_out"]] == ["small-20", "small-40"]
    for summary in found["summary"]:  # the runs took exactly the simulator's price: no error
        assert abs(summary["worst"]) < 1e-6, summary
    assert "Held-out error by metric and percentile" in (out / "report.md").read_text(encoding="utf-8")
    assert (out / "percentiles.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "fitted-profile.json").exists()


@pytest.mark.parametrize("argv, field", [
    (["NOWHERE"], "FOLDER"),
    (["EMPTY"], "FOLDER"),
    (["EMPTY", "--slo", "tpot_p101_ms=3"], "--slo"),
    (["EMPTY", "--slo", "tpot_p99_ms=-3"], "--slo"),
])
def test_bad_input_is_one_line(tmp_path: Path, argv: list[str], field: str) -> None:
    (tmp_path / "EMPTY").mkdir()
    argv = [str(tmp_path / a) if a in ("NOWHERE", "EMPTY") else a for a in argv]
    done = subprocess.run([sys.executable, "-m", "layerwise", "validate-serving", *argv, "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], done.stderr
    assert not (tmp_path / "out" / "report.md").exists()


def test_steadiness_by_hand() -> None:
    """Decode-only iterations: four of 2 sequences (10, 20, 30, 40 ms), one of 3, one mixed (ignored):
    the batch of 2 is the most frequent; numpy's linear percentiles give p10 13, p50 25, p90 37 ms."""
    from serving.batch import PREFILL
    from serving.driver import IterationRecord, ServingRun
    from validate.serving.steadiness import steadiness

    def iteration(index: int, items: tuple[PlanItem, ...], duration_s: float) -> IterationRecord:
        plan = IterationPlan(index, 0.0, items, len(items), False)
        return IterationRecord(replica=0, plan=plan, start_s=0.0, end_s=duration_s, duration_s=duration_s,
                               num_waiting=0, num_running=len(items), kv_blocks_used=0)

    two = tuple(PlanItem(i, DECODE, 1, 100, True) for i in range(2))
    three = tuple(PlanItem(i, DECODE, 1, 100, True) for i in range(3))
    mixed = (PlanItem(9, PREFILL, 50, 50, True), *two)
    run = ServingRun(records=(), iterations=(iteration(0, two, 0.010), iteration(1, two, 0.020),
                                             iteration(2, three, 0.5), iteration(3, mixed, 0.9),
                                             iteration(4, two, 0.030), iteration(5, two, 0.040)),
                     samples=(), replicas=1, pipeline_depth=1)
    found = steadiness(run)
    assert found is not None and (found.batch_size, found.iterations) == (2, 4)
    assert (found.p10_s, found.p50_s, found.p90_s) == pytest.approx((0.013, 0.025, 0.037))
    assert found.spread == pytest.approx(37 / 13)
