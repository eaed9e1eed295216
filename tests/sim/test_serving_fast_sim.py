"""``simulate_serving`` on the fast driver against the reference driver (``driver="reference"``), with
the simulator's own pricer: the same run record and metrics on workloads with chunked prefill,
preemption, several replicas and pipelines of depth 2; and the token grid's stage passes against the
exact pass at every token count of a range (brute force)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from serving.setup import serving_setup_from_dict
from sim.inputs import resolve_basis
from sim.serving.run import iteration_pricer, simulate_serving
from sim.serving.token_grid import DEFAULT_TOLERANCE, grid_cell
from topology.errors import LayerwiseError
from topology.experiment import build_plan

REPO = Path(__file__).resolve().parents[2]

RAW: dict[str, Any] = {
    "name": "small-serve-fast",
    "model": "small-1024",
    "cluster": "h100x2",
    "workload": {"phase": "serve", "seed": 11, "num_requests": 150, "arrivals": {"kind": "poisson", "rate_per_s": 60},
                 "prompt_tokens": {"kind": "lognormal", "median_tokens": 250, "sigma": 0.9},
                 "output_tokens": {"kind": "lognormal", "median_tokens": 60, "sigma": 0.7}},
    "scheduler": {"max_num_batched_tokens": 512, "max_num_seqs": 48, "max_model_len_tokens": 2048},
    "plans": {"tp1": {"partitioner": "tp-pp", "tp": 1, "pp": 1}, "pp2": {"partitioner": "tp-pp", "tp": 1, "pp": 2}},
}

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "chunked": ("tp1", {}),
    "preemption": ("tp1", {"scheduler": {"num_blocks": 80}}),
    "pipeline-preemption": ("pp2", {"scheduler": {"num_blocks": 80}}),
    "replicas": ("pp2", {"serving": {"replicas": 2, "router": "least_kv"}}),
    "closed-loop": ("tp1", {"workload": {"arrivals": {"kind": "closed_loop", "users": 16, "think_time_s": 0.02}}}),
}


def _setup(changes: dict[str, Any]):  # type: ignore[no-untyped-def]
    raw = json.loads(json.dumps(RAW))
    for key, values in changes.items():
        raw.setdefault(key, {}).update(values)
    return serving_setup_from_dict(raw)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_fast_driver_simulates_the_reference_run(case: str) -> None:
    plan_name, changes = CASES[case]
    setup = _setup(changes)
    basis = resolve_basis(setup.experiment)
    plan = build_plan(setup.experiment, plan_name)
    fast = simulate_serving(setup, basis, plan_name, plan)
    reference = simulate_serving(setup, basis, plan_name, plan, driver="reference")
    assert fast.run.records == reference.run.records
    assert fast.run.iterations == reference.run.iterations
    assert fast.run.samples == reference.run.samples
    assert fast.record.to_dict() == reference.record.to_dict()
    assert fast.metrics == reference.metrics
    if "preemption" in case:
        assert fast.metrics.preemptions > 0


def test_the_reference_driver_keeps_plans_only() -> None:
    setup = _setup({})
    basis = resolve_basis(setup.experiment)
    with pytest.raises(LayerwiseError, match="detail"):
        simulate_serving(setup, basis, "tp1", build_plan(setup.experiment, "tp1"), detail="records",
                         driver="reference")


@pytest.mark.parametrize("plan_name", ["tp1", "pp2"])
def test_the_token_grid_is_within_twice_its_tolerance_of_the_exact_pass(plan_name: str) -> None:
    setup = _setup({})
    basis = resolve_basis(setup.experiment)
    plan = build_plan(setup.experiment, plan_name)
    exact = iteration_pricer(basis, plan)
    grid = iteration_pricer(basis, plan, token_grid=True)
    worst = 0.0
    nodes = 0
    for tokens in range(1, 1200):
        for stage in plan.stages:
            want = exact._dense_s(stage.index, tokens, False)
            got = grid._dense_s(stage.index, tokens, False)
            if grid_cell(tokens)[0] == tokens:
                nodes += 1
                assert got == want
            worst = max(worst, *(abs(g - w) / w for g, w in zip(got, want, strict=True)))
    assert nodes > 0
    assert worst <= 2 * DEFAULT_TOLERANCE


def test_the_cli_table_is_the_same_whether_or_not_every_plan_is_kept(tmp_path: Path) -> None:
    """Without --json or --trace the command keeps the iterations as columns, not plans: the same table."""
    experiment = tmp_path / "serve.yaml"
    experiment.write_text(json.dumps(RAW))
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def table(*args: str) -> list[str]:
        done = subprocess.run([sys.executable, "-m", "layerwise", "simulate", str(experiment), "--plan", "pp2",
                               "--set", "workload.num_requests=60", *args], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path, env=env, check=True)
        return [line for line in done.stdout.splitlines() if not line.startswith("wrote ")]

    plain = table()
    assert any("TTFT" in line for line in plain)
    assert plain == table("--json", "run.json")
