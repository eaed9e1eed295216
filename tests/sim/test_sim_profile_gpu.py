"""Where profiles meet clusters in the simulator (``resolve_inputs``): another GPU's profile is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sim_toy import toy_experiment, toy_profile, toy_raw

from sim.resolve import resolve, resolve_given
from sim.simulate import estimate, simulate
from topology.errors import LayerwiseError
from topology.experiment import load_experiment
from topology.profile import HardwareProfile, write_profile

PLANS = {"pp2": {"partitioner": "tp-pp", "tp": 1, "pp": 2, "microbatches": 1}}


def cpu_profile() -> HardwareProfile:
    toy = toy_profile()
    return HardwareProfile(gpu_name="cpu", gpu_count=1, params=toy.params)


@pytest.mark.parametrize("run", [simulate, estimate])
def test_a_cpu_profile_on_an_h100_cluster_is_refused_unless_forced(run) -> None:  # type: ignore[no-untyped-def]
    experiment = toy_experiment(PLANS)
    with pytest.raises(LayerwiseError) as info:
        run(resolve_given(experiment, "pp2", cpu_profile()))
    assert info.value.field == "profile" and "'cpu'" in info.value.message and "H100-SXM5-80GB" in info.value.message
    forced = run(resolve_given(experiment, "pp2", cpu_profile(), force=True))
    same = run(resolve_given(experiment, "pp2", toy_profile()))
    assert forced.metrics.step_time_s == same.metrics.step_time_s  # forced: the profile's numbers are used


def test_a_profile_named_in_the_experiment_file_is_checked_too(tmp_path: Path) -> None:
    write_profile(tmp_path / "cpu.json", cpu_profile())
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({**toy_raw(PLANS), "profile": "cpu.json"}))
    with pytest.raises(LayerwiseError, match="measured on 'cpu'"):
        resolve(load_experiment(str(tmp_path / "exp.yaml")), "pp2")
