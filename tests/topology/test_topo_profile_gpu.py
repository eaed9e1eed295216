"""A profile measured on one GPU is refused for a cluster of another GPU, naming both (issue 13)."""

from __future__ import annotations

import pytest

from topology.cluster import load_cluster
from topology.errors import LayerwiseError
from topology.profile import HardwareProfile, ProfileParams, check_profile_for_cluster, profile_gpu_model


def profile(gpu_name: str) -> HardwareProfile:
    return HardwareProfile(gpu_name=gpu_name, gpu_count=1, params=ProfileParams(hbm_bw_bytes_per_s=1e12))


@pytest.mark.parametrize(("gpu_name", "model"), [
    ("NVIDIA H100 80GB HBM3", "H100-SXM5-80GB"),  # torch.cuda.get_device_name (results/profiles/h100x1.json)
    ("NVIDIA H200", "H200-SXM-141GB"),  # results/profiles/h200x1.json
    ("H100-SXM5-80GB", "H100-SXM5-80GB"),  # the data file's name (layerwise validate's fitted profiles)
    ("h200-sxm", "H200-SXM-141GB"),  # the data file itself
    ("cpu", None),  # layerwise calibrate --device cpu
    ("toy", None),
])
def test_profile_gpu_model(gpu_name: str, model: str | None) -> None:
    assert profile_gpu_model(gpu_name) == model


def test_the_same_gpu_passes() -> None:
    check_profile_for_cluster(profile("NVIDIA H100 80GB HBM3"), load_cluster("seed-16xh100"))
    check_profile_for_cluster(profile("NVIDIA H200"), load_cluster("h200x4"))


@pytest.mark.parametrize(("gpu_name", "cluster"), [
    ("cpu", "h100x1"), ("NVIDIA H100 80GB HBM3", "h200x4"), ("NVIDIA H200", "seed-16xh100"),
])
def test_another_gpu_is_refused_naming_both_unless_forced(gpu_name: str, cluster: str) -> None:
    target = load_cluster(cluster)
    with pytest.raises(LayerwiseError) as info:
        check_profile_for_cluster(profile(gpu_name), target)
    assert info.value.field == "profile"
    assert f"measured on {gpu_name!r}" in info.value.message and f"has {target.gpu.name} GPUs" in info.value.message
    check_profile_for_cluster(profile(gpu_name), target, force=True)
