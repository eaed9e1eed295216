"""``layerwise capacity --confirm DIR``: serve the chosen deployment for real and bisect its measured capacity
under the same SLOs, beside the predicted one.

The deployment confirmed is the best ranked one that this machine can run as one replica (aggregated,
one replica, its GPUs at most those present; on a CPU-only machine, gloo processes). Each probe writes the
experiment at one request rate (the same requests' lengths and seed, the deployment's scheduler settings,
its plan as a plan file) and serves it with ``layerwise run`` (the executor under torchrun); the run's
record gives the verdict by the same rule as the search (``serving.latency.serving_metrics``: every SLO
met and a steady state). The rate is bisected on a geometric scale between half and one and a half times
the predicted capacity, to ``--resolution``. Everything lands in DIR: each probe's experiment and
record, and ``confirm.json``.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from layerwise.confirm import devices_present
from serving.latency import serving_metrics
from serving.run_record import serving_record_from_dict
from serving.setup import ServingSetup
from serving.slo import SloSpec
from sim.capacity.result import CapacityResult, Finding
from sim.capacity.space import AGGREGATED
from topology.atomic_io import write_text_atomic
from topology.errors import LayerwiseError
from validate.serving.capacity import bisect_capacity

Probe = Callable[[float], bool]  # serves the deployment at a rate: whether the run met the SLOs
LOW_SHARE, HIGH_SHARE = 0.5, 1.5  # the bisection's range around the predicted capacity


@dataclass(frozen=True)
class Confirmation:
    """The predicted capacity of one deployment, its measured one (None: not even the lowest rate met)
    and every probe's rate and verdict, in order."""

    deployment: str
    predicted_per_s: float
    measured_per_s: float | None
    probes: tuple[tuple[float, bool], ...]
    low_per_s: float
    high_per_s: float

    def describe(self) -> str:
        probes = ", ".join(f"{rate:.4g}/s {'met' if met else 'missed'}" for rate, met in self.probes)
        if self.measured_per_s is None:
            measured = f"below {self.low_per_s:.4g} requests/s (the lowest rate probed missed the SLOs)"
            error = ""
        else:
            at_top = " (the highest rate probed)" if self.measured_per_s >= self.high_per_s else ""
            measured = f"{self.measured_per_s:.4g} requests/s{at_top}"
            error = f"; predicted / measured - 1 = {self.predicted_per_s / self.measured_per_s - 1:+.1%}"
        return (f"CONFIRM {self.deployment}: predicted {self.predicted_per_s:.4g} requests/s, measured "
                f"{measured}{error}. Probes: {probes}.")


def confirmable(result: CapacityResult, devices: int) -> Finding | None:
    """The best ranked deployment this machine runs as one replica."""
    return next((f for f in result.ranked if f.deployment.kind == AGGREGATED and f.deployment.replicas == 1
                 and f.deployment.gpus <= devices and f.capacity_per_s), None)


def confirm_rates(deployment: str, predicted_per_s: float, probe: Probe, resolution: float) -> Confirmation:
    """Bisect the measured capacity with ``probe`` around the prediction."""
    probes: list[tuple[float, bool]] = []

    def measured(rate_per_s: float) -> bool:
        met = probe(rate_per_s)
        probes.append((rate_per_s, met))
        return met

    low, high = predicted_per_s * LOW_SHARE, predicted_per_s * HIGH_SHARE
    found = bisect_capacity(measured, low, high, resolution)
    return Confirmation(deployment, predicted_per_s, found, tuple(probes), low, high)


def experiment_at(setup: ServingSetup, finding: Finding, plan_file: Path, rate_per_s: float) -> dict[str, object]:
    """The experiment file of one probe: the setup's, at ``rate_per_s``, with the deployment's settings."""
    raw = copy.deepcopy(setup.experiment.raw)
    knobs = finding.deployment.knobs
    raw["name"] = f"{raw.get('name', 'capacity')}-confirm-{rate_per_s:.6g}"
    arrivals = raw["workload"]["arrivals"]
    if not isinstance(arrivals, dict) or "rate_per_s" not in arrivals:
        raise LayerwiseError("--confirm", "the workload's arrivals have no rate_per_s to probe (poisson or gamma)")
    arrivals["rate_per_s"] = rate_per_s
    scheduler = dict(raw.get("scheduler") or {})
    scheduler.update(max_num_seqs=knobs.max_num_seqs, max_num_batched_tokens=knobs.max_num_batched_tokens,
                     policy=knobs.policy)
    raw["scheduler"] = scheduler
    raw["plans"] = {"confirm": {"file": str(plan_file.resolve())}}
    return raw


def executor_probe(setup: ServingSetup, finding: Finding, slos: SloSpec, out_dir: Path,
                   say: Callable[[str], None]) -> Probe:
    """A probe that serves the deployment with ``layerwise run`` and judges the record."""
    plan_file = out_dir / "plan.json"
    write_text_atomic(plan_file, finding.deployment.plan.plan.to_json() + "\n")

    def probe(rate_per_s: float) -> bool:
        stem = out_dir / f"rate-{rate_per_s:.6g}"
        write_text_atomic(stem.with_suffix(".yaml"), yaml.safe_dump(experiment_at(setup, finding, plan_file,
                                                                                   rate_per_s), sort_keys=False))
        say(f"serving {rate_per_s:.4g} requests/s for real ({stem.with_suffix('.yaml').name})")
        command = [sys.executable, "-m", "layerwise", "run", str(stem.with_suffix(".yaml")), "--plan", "confirm",
                   "--json", str(stem.with_suffix(".json"))]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stdout + done.stderr).strip().splitlines()
            raise LayerwiseError("--confirm", f"layerwise run at {rate_per_s:.4g}/s failed: "
                                              f"{last[-1] if last else done.returncode}")
        record = serving_record_from_dict(json.loads(stem.with_suffix(".json").read_text(encoding="utf-8")))
        metrics = serving_metrics(record.run.records, num_gpus=finding.deployment.gpus, slos=slos)
        return metrics.meets_slos

    return probe


def confirm_capacity(result: CapacityResult, setup: ServingSetup, slos: SloSpec, out_dir: Path, resolution: float,
                     say: Callable[[str], None], probe: Probe | None = None) -> str:
    """Run the confirmation (``probe`` for tests; default the executor) and write ``confirm.json``."""
    devices, backend = devices_present()
    finding = confirmable(result, devices)
    if finding is None:
        return (f"CONFIRM: no ranked deployment runs here as one replica ({devices} devices, {backend}); "
                f"nothing was served.")
    out_dir.mkdir(parents=True, exist_ok=True)
    label = f"{finding.deployment.describe_plan()} ({finding.deployment.knobs.describe()})"
    assert finding.capacity_per_s is not None
    confirmation = confirm_rates(label, finding.capacity_per_s,
                                 probe or executor_probe(setup, finding, slos, out_dir, say), resolution)
    record = {"deployment": label, "backend": backend, "predicted_per_s": confirmation.predicted_per_s,
              "measured_per_s": confirmation.measured_per_s, "low_per_s": confirmation.low_per_s,
              "high_per_s": confirmation.high_per_s, "resolution": resolution,
              "probes": [{"rate_per_s": rate, "met": met} for rate, met in confirmation.probes]}
    write_text_atomic(out_dir / "confirm.json", json.dumps(record, indent=1) + "\n")
    return confirmation.describe() + f" (records in {out_dir})"
