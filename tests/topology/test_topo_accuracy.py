"""Validation bands by regime, and the plan components no run has measured."""

from __future__ import annotations

import pytest

from topology.accuracy import (
    RegimeError,
    band_for,
    describe_band,
    plan_components,
    regime_error_from_dict,
    regime_of,
    unvalidated_components,
)
from topology.cluster import Cluster
from topology.errors import LayerwiseError
from topology.model import ModelSpec
from topology.partition import partition_tp_pp
from topology.profile import HardwareProfile, ProfileParams, profile_from_dict
from topology.workload import Workload

SINGLE_GPU = RegimeError(regime="decode-graph", gpu="NVIDIA H100 80GB HBM3", runs=28, configurations=20,
                         mape=0.038, worst=0.106, components=("kernels",))


def test_regimes() -> None:
    assert regime_of("decode", True) == "decode-graph"
    assert regime_of("decode", False) == "decode-eager"
    assert regime_of("prefill", True) == "prefill"


def test_components_of_the_seed_plans(seed_model: ModelSpec, seed_cluster: Cluster, seed_decode: Workload) -> None:
    # TP8 x PP2 on 2 nodes of 8: stage 0 on node 0, stage 1 on node 1
    baseline = partition_tp_pp(seed_model, seed_cluster, seed_decode, tp=8, pp=2, microbatches=8)
    assert plan_components(baseline, seed_cluster, loops_back=True) == ("kernels", "allreduce", "p2p", "cross-node")
    # TP8 x PP1: one node, no pipeline
    single = partition_tp_pp(seed_model, seed_cluster, seed_decode, tp=8, pp=1, microbatches=1)
    assert plan_components(single, seed_cluster, loops_back=True) == ("kernels", "allreduce")
    # TP1 x PP8 on gpu0..gpu7 (node 0): point-to-point only; the loop-back stays in the node
    pipeline = partition_tp_pp(seed_model, seed_cluster, seed_decode, tp=1, pp=8, microbatches=8)
    assert plan_components(pipeline, seed_cluster, loops_back=True) == ("kernels", "p2p")


def test_unvalidated_and_the_phrase() -> None:
    parts = ("kernels", "allreduce", "p2p", "cross-node")
    assert unvalidated_components(parts, SINGLE_GPU) == ("allreduce", "p2p", "cross-node")
    assert unvalidated_components(parts, None) == parts
    text = describe_band(SINGLE_GPU, ("allreduce",))
    assert text == ("±10.6% (90% of held-out decode-graph errors on NVIDIA H100 80GB HBM3, 28 runs, MAPE 3.8%, "
                    "worst 10.6%); unvalidated: all-reduce")  # a band written without a bound: its worst error
    assert describe_band(None, ("kernels",)) == "no validation band; unvalidated: kernels"
    assert band_for((SINGLE_GPU,), "decode-graph").band is SINGLE_GPU
    assert band_for((SINGLE_GPU,), "prefill").band is None


def test_profile_round_trip_and_bad_entries() -> None:
    profile = HardwareProfile(gpu_name="x", gpu_count=1, params=ProfileParams(), validation=(SINGLE_GPU,))
    assert profile_from_dict(profile.to_dict()).validation == (SINGLE_GPU,)
    with pytest.raises(LayerwiseError, match=r"validation\.regime"):
        regime_error_from_dict({**SINGLE_GPU.to_dict(), "regime": "decode"})
    with pytest.raises(LayerwiseError, match=r"validation\.components"):
        regime_error_from_dict({**SINGLE_GPU.to_dict(), "components": ["kernels", "nvlink"]})
    with pytest.raises(LayerwiseError, match="missing field 'mape'"):
        regime_error_from_dict({k: v for k, v in SINGLE_GPU.to_dict().items() if k != "mape"})


def test_a_profile_value_of_the_wrong_kind_is_one_error_naming_the_profile() -> None:
    """A sim parameter that is not a number once escaped as a bare ValueError (a traceback)."""
    raw = HardwareProfile(gpu_name="x", gpu_count=1, params=ProfileParams()).to_dict()
    raw["params"]["sim_params"] = {"hbm_efficiency": "fast"}
    wrong_kind = r"^profile.params.sim_params.hbm_efficiency: Input should be a valid number, got 'fast'$"
    with pytest.raises(LayerwiseError, match=wrong_kind):
        profile_from_dict(raw)
    raw["params"]["sim_params"] = {}
    with pytest.raises(LayerwiseError, match=r"^profile.gpu_name: Field required$"):
        profile_from_dict({k: v for k, v in raw.items() if k != "gpu_name"})
