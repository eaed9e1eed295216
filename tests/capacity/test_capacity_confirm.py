"""``layerwise capacity --confirm``: the measured bisection around the prediction (by hand, on a made-up
machine whose capacity is known), the probe's experiment file, and one real probe on CPU (gloo)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from capacity_cases import EXPERIMENT

from layerwise.capacity_confirm import confirm_rates, experiment_at
from layerwise.cli import main
from serving.setup import load_serving_setup


def test_the_bisection_finds_a_known_measured_capacity_by_hand() -> None:
    """Predicted 100/s; the machine meets the SLOs up to 80/s. Probes: 50 (met), 150 (missed), then the
    geometric middles 86.6 (missed), 65.8 (met), 75.5 (met), 80.9 (missed), 78.2 (met), 79.5 (met), 80.2
    (missed): resolution 2% stops with 79.5/80.2 < 1.02."""
    asked: list[float] = []

    def probe(rate: float) -> bool:
        asked.append(rate)
        return rate <= 80.0

    found = confirm_rates("x", 100.0, probe, 0.02)
    assert found.measured_per_s is not None and 80.0 / 1.02 <= found.measured_per_s <= 80.0
    assert asked[:3] == [50.0, 150.0, pytest.approx((50.0 * 150.0) ** 0.5)]
    assert [met for _, met in found.probes] == [rate <= 80.0 for rate in asked]
    assert "predicted 100 requests/s" in found.describe() and "- 1 = +25." in found.describe()  # 100/79.x - 1
    assert found.describe().count("/s met") + found.describe().count("/s missed") == len(asked)


def test_a_machine_that_misses_even_half_the_prediction() -> None:
    found = confirm_rates("x", 100.0, lambda rate: False, 0.05)
    assert found.measured_per_s is None and found.probes == ((50.0, False),)
    assert "below 50 requests/s" in found.describe()


def test_every_probed_rate_met_is_said_so() -> None:
    found = confirm_rates("x", 10.0, lambda rate: True, 0.05)
    assert found.measured_per_s == 15.0 and "(the highest rate probed)" in found.describe()


@pytest.mark.slow
def test_one_real_probe_on_cpu(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The search on the tiny space, then --confirm with an SLO no CPU run meets: the first probe (half the
    predicted rate) is served for real with gloo, misses, and the bisection stops there."""
    out = tmp_path / "confirm"
    argv = ["capacity", EXPERIMENT, "--gpu-budget", "1", "--max-num-seqs", "16", "--max-num-batched-tokens", "512",
            "--chunked", "on", "--uneven", "0", "--resolution", "0.1", "--jobs", "1",
            "--slo", "ttft_p99_ms=20", "--slo", "tpot_p90_ms=4", "--set", "workload.num_requests=12",
            "--set", "scheduler.num_blocks=128",
            "--confirm", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "CONFIRM TP1xPP1" in text and "below" in text
    record = json.loads((out / "confirm.json").read_text())
    assert len(record["probes"]) == 1 and record["probes"][0]["met"] is False
    assert record["probes"][0]["rate_per_s"] == pytest.approx(record["predicted_per_s"] * 0.5)
    served = sorted(out.glob("rate-*.json"))
    assert len(served) == 1 and json.loads(served[0].read_text())["source"] == "measured"


def test_the_probe_experiment_has_the_rate_the_settings_and_the_plan(tmp_path: Path) -> None:
    from dataclasses import dataclass

    from sim.capacity.space import Knobs

    @dataclass
    class _Deployment:
        knobs: Knobs

    @dataclass
    class _Finding:
        deployment: _Deployment

    setup = load_serving_setup(EXPERIMENT)
    raw = experiment_at(setup, _Finding(_Deployment(Knobs(8, 256, False))), tmp_path / "p.json", 12.5)  # type: ignore[arg-type]
    assert raw["workload"]["arrivals"] == {"kind": "poisson", "rate_per_s": 12.5}  # type: ignore[index]
    assert raw["scheduler"]["max_num_seqs"] == 8 and raw["scheduler"]["policy"] == "prefill-first"  # type: ignore[index]
    assert raw["plans"] == {"confirm": {"file": str((tmp_path / "p.json").resolve())}}
    assert yaml.safe_load(yaml.safe_dump(raw)) == raw
