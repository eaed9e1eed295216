"""``--ship-profile``: the fitted profile without raw measurements, under a name that fits its GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from topology.errors import LayerwiseError
from topology.profile import HardwareProfile, ProfileParams, load_profile, write_profile
from validate.ship import check_ship_path, shipped_profile


def test_the_shipped_copy_drops_raw_and_keeps_everything_else(tmp_path: Path) -> None:
    params = ProfileParams(hbm_bw_bytes_per_s=3.0e12, sim_params={"launch_overhead_eager_s": 2e-5})
    fitted = HardwareProfile(gpu_name="NVIDIA H100 80GB HBM3", gpu_count=1, params=params,
                             environment={"driver": "580"}, raw={"hbm": {"points": [1, 2, 3]}}, source="validate-fit")
    shipped = shipped_profile(fitted, "results/report-h100x1/fitted-profile.json", ["results/hardware/h100x1-v2"])
    write_profile(tmp_path / "h100-sxm.json", shipped)
    loaded = load_profile(tmp_path / "h100-sxm.json")
    assert loaded.raw == {} and loaded.params == fitted.params and loaded.source == "validate-fit"
    assert loaded.environment == {"driver": "580", "shipped_from": (
        "results/report-h100x1/fitted-profile.json (layerwise validate on results/hardware/h100x1-v2; "
        "raw measurements left out)")}


def test_a_path_named_for_a_gpu_preset_must_hold_that_gpu(tmp_path: Path) -> None:
    assert check_ship_path(tmp_path / "h100-sxm.json", "NVIDIA H100 80GB HBM3").name == "h100-sxm.json"
    assert check_ship_path(tmp_path / "h200-sxm.json", "H200-SXM-141GB").name == "h200-sxm.json"
    assert check_ship_path(tmp_path / "my-node.json", "NVIDIA H100 80GB HBM3").name == "my-node.json"
    with pytest.raises(LayerwiseError, match="named for GPU preset 'h100-sxm'"):
        check_ship_path(tmp_path / "h100-sxm.json", "NVIDIA H200")
    with pytest.raises(LayerwiseError, match="is a folder"):
        check_ship_path(tmp_path, "NVIDIA H100 80GB HBM3")
