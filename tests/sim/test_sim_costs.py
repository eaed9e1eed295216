"""Pure cost functions: the Hopper L2 effect, the residency rule, collectives, parameters."""

from __future__ import annotations

import dataclasses
import math

import pytest

from sim.costs.build import build_cost_model
from sim.costs.comm import allreduce_cost, p2p_cost
from sim.costs.kernels import op_cost
from sim.costs.measured import Correction, KernelTable, build_table
from sim.costs.memo import PriceMemo
from sim.costs.residency import weight_hit_fraction
from sim.params import FITTABLE_PARAMS, datasheet_params, resolve_params
from topology.cluster import load_cluster
from topology.errors import LayerwiseError
from topology.ops import Op
from topology.profile import CollectiveFit, GemmPoint, HardwareProfile, ProfileParams
from topology.workload import TokenShape

H100 = load_cluster("h100x8")
DECODE = TokenShape(batch=16, new_tokens=1, context_len=1)


def _gemm(in_features: int, out_features: int) -> Op:
    return Op("g", 0, "gemm", 2, in_features=in_features, out_features=out_features)


# 16, 25 and 34 MB of weights; below ~10 MB a GEMM's fixed latency and launch dilute the gain.
@pytest.mark.parametrize(("k", "n"), [(2048, 4096), (3072, 4096), (4096, 4096)])
def test_hot_l2_decode_gemm_is_1p3_to_1p6x_faster_well_under_l2(k, n):
    cost = build_cost_model(H100, None, cuda_graphs=True)
    op = _gemm(k, n)
    cold, hot = op_cost(op, DECODE, cost, 0.0), op_cost(op, DECODE, cost, 1.0)
    assert 1.3 <= cold.time_s / hot.time_s <= 1.6
    assert hot.hbm_bytes < cold.hbm_bytes and hot.l2_bytes == op.in_features * op.out_features * 2


def test_weights_near_or_above_l2_get_no_l2_speed():
    usable = datasheet_params(H100).l2_usable_bytes
    for weights in (usable * 0.999, usable * 1.5, 50e6, 200e6):
        # A decode pass that streams even a little (activations) beside weights this large keeps
        # almost nothing: the hit fraction is (C - S) / W at most, 0 when W >= C.
        assert weight_hit_fraction(int(weights), int(usable * 0.05), usable) < 0.96
    assert weight_hit_fraction(int(usable * 1.5), 0, usable) == pytest.approx(1 / 1.5)
    assert weight_hit_fraction(int(200e6), int(50e6), usable) == 0.0


def test_residency_rule():
    assert weight_hit_fraction(10, 5, 15) == 1.0  # D = W + S fits
    assert weight_hit_fraction(10, 10, 15) == 0.5  # partial: (C - S) / W
    assert weight_hit_fraction(10, 20, 15) == 0.0  # the streamed bytes alone flush L2
    assert weight_hit_fraction(0, 0, 15) == 0.0


def test_ring_allreduce_and_p2p_formulas():
    cost = build_cost_model(H100, None, cuda_graphs=True)
    p = cost.params
    devices = H100.devices
    ring = allreduce_cost(1_000_000, devices, H100, cost)
    n = len(devices)
    assert ring.time_s == pytest.approx(p.collective_base_latency_s + 2 * (n - 1) * p.collective_latency_s
                                        + 2 * (n - 1) / n * 1e6 / (p.intra_node_bw_bytes_per_s
                                                                   * p.collective_link_efficiency))
    hops = H100.route("gpu0", "gpu1")
    msg = p2p_cost(1_000_000, hops, cost)
    assert msg.time_s == pytest.approx(p.p2p_latency_s + 1e6 / (p.intra_node_bw_bytes_per_s * p.link_efficiency))


def test_hierarchical_allreduce_across_nodes_is_slower_than_inside_one():
    two_nodes = load_cluster("seed-16xh100")
    cost = build_cost_model(two_nodes, None, cuda_graphs=True)
    inside = allreduce_cost(8_000_000, two_nodes.devices[:4], two_nodes, cost)
    across = allreduce_cost(8_000_000, two_nodes.devices[6:10], two_nodes, cost)
    assert across.time_s > inside.time_s


def test_an_eager_collective_fit_prices_eager_runs_only():
    """Calibration times collectives as eager calls (host launch included): inside a CUDA graph the
    formula, with its fitted parameters, prices them."""
    fit = CollectiveFit(op="allreduce", group_size=8, latency_s=20e-6, bw_bytes_per_s=100e9)
    profile = HardwareProfile(gpu_name="H100", gpu_count=8, params=ProfileParams(collectives=(fit,)))
    eager = allreduce_cost(1_000_000, H100.devices, H100, build_cost_model(H100, profile, cuda_graphs=False))
    assert eager.time_s == pytest.approx(20e-6 + 2 * 7 / 8 * 1e6 / 100e9)
    graph = allreduce_cost(1_000_000, H100.devices, H100, build_cost_model(H100, profile, cuda_graphs=True))
    assert graph == allreduce_cost(1_000_000, H100.devices, H100, build_cost_model(H100, None, cuda_graphs=True))


def test_the_graph_allreduce_formula_with_a_base_latency_and_its_own_efficiency():
    # 4 ranks, 1 MB: 8 us base + 2 x 3 ring steps x 0.5 us + 2 x 3/4 x 1e6 B / (450e9 B/s x 0.5) = 14.667 us
    profile = HardwareProfile(gpu_name="H100", gpu_count=8, params=ProfileParams(sim_params={
        "collective_base_latency_s": 8e-6, "collective_latency_s": 0.5e-6, "collective_link_efficiency": 0.5}))
    cost = build_cost_model(H100, profile, cuda_graphs=True)
    ring = allreduce_cost(1_000_000, H100.devices[:4], H100, cost)
    assert ring.time_s == pytest.approx(8e-6 + 3e-6 + 1.5e6 / 225e9, rel=1e-12)


def test_a_measured_gemm_is_priced_as_measured_and_its_neighbours_borrow_its_correction():
    base = build_cost_model(H100, None, cuda_graphs=True)
    launch_s = base.params.launch_overhead_graph_s
    unmeasured = op_cost(_gemm(4096, 4096), DECODE, base, 0.0)
    # a point timed in a graph burst: its time holds one launch; the kernel itself ran 2x the base
    point = GemmPoint(m=16, n=4096, k=4096, time_s=2 * (unmeasured.time_s - launch_s) + launch_s)
    profile = HardwareProfile(gpu_name="H100", gpu_count=1, params=ProfileParams(gemm_points=(point,)))
    measured = build_cost_model(H100, profile, cuda_graphs=True)
    assert measured.params.gemm_latency_s == base.params.gemm_latency_s  # one point fits no base model
    same = op_cost(_gemm(4096, 4096), DECODE, measured, 0.0)
    assert same.time_s == pytest.approx(point.time_s, rel=1e-12) and same.evidence == 1.0
    near = op_cost(_gemm(4096, 5120), DECODE, measured, 0.0)  # log distance ln(1.25) = 0.22: weight 0.82
    ratio = (near.time_s - launch_s) / (op_cost(_gemm(4096, 5120), DECODE, base, 0.0).time_s - launch_s)
    weight = math.exp(-math.log(1.25) ** 2 / (2 * 0.35**2))
    assert near.evidence == pytest.approx(weight) and ratio == pytest.approx(2 ** (weight / (weight + 0.1)))
    far = op_cost(_gemm(256, 65536), DECODE, measured, 0.0)
    assert far.evidence < 1e-6 and far.time_s == pytest.approx(op_cost(_gemm(256, 65536), DECODE, base, 0.0).time_s,
                                                               rel=1e-4)


def test_a_curve_interpolates_in_log_size_and_holds_its_ends():
    table = build_table([((0.0,), math.log(10), 2e-6), ((0.0,), math.log(1000), 8e-6)], lambda i: 1e-6)
    assert table.correction((0.0,), math.log(10)).ratio == pytest.approx(2.0)
    assert table.correction((0.0,), math.log(100)).ratio == pytest.approx(4.0)  # halfway in log size and log ratio
    assert table.correction((0.0,), math.log(1e6)).ratio == pytest.approx(8.0)
    assert KernelTable().correction((0.0,), 1.0) == Correction(1.0, 0.0)


def test_the_base_model_is_fitted_to_decode_points():
    # decode GEMMs timed as launch + 2 us + bytes / 3e12 B/s: the fit recovers the latency and bandwidth
    launch_s = datasheet_params(H100).launch_overhead_graph_s
    points = tuple(GemmPoint(m=m, n=n, k=k, time_s=launch_s + 2e-6 + (n * k + m * (n + k)) * 2 / 3e12)
                   for m in (1, 16) for n, k in ((4096, 4096), (8192, 4096), (14336, 4096)))
    profile = HardwareProfile(gpu_name="H100", gpu_count=1, params=ProfileParams(gemm_points=points))
    params = build_cost_model(H100, profile, cuda_graphs=True).params
    assert params.gemm_latency_s == pytest.approx(2e-6, rel=1e-6)
    assert params.gemm_bw_efficiency * params.hbm_effective_read_bw_bytes_per_s == pytest.approx(3e12, rel=1e-6)


def test_every_fittable_parameter_takes_effect_from_sim_params():
    base = resolve_params(H100, None)
    for name in FITTABLE_PARAMS:
        value = getattr(base, name) * 0.5
        profile = HardwareProfile(gpu_name="H100", gpu_count=8, params=ProfileParams(sim_params={name: value}))
        assert getattr(resolve_params(H100, profile), name) == value
    assert set(FITTABLE_PARAMS) == {f.name for f in dataclasses.fields(base)}


def test_measured_profile_fields_replace_datasheet_values():
    profile = HardwareProfile(gpu_name="H100", gpu_count=8, params=ProfileParams(
        hbm_bw_bytes_per_s=2.9e12, matmul_flops_per_s=700e12, launch_overhead_graph_s=2e-6))
    params = resolve_params(H100, profile)
    assert params.hbm_effective_bw_bytes_per_s == 2.9e12 and params.peak_flops_per_s == 700e12
    assert params.compute_efficiency == 1.0 and params.launch_overhead_graph_s == 2e-6


def test_unknown_sim_param_is_a_user_error_naming_it():
    profile = HardwareProfile(gpu_name="H100", gpu_count=8, params=ProfileParams(sim_params={"warp_speed": 9.0}))
    with pytest.raises(LayerwiseError, match="warp_speed"):
        resolve_params(H100, profile)
    bad = HardwareProfile(gpu_name="H100", gpu_count=8, params=ProfileParams(sim_params={"hbm_efficiency": 2.0}))
    with pytest.raises(LayerwiseError, match="hbm_efficiency"):
        resolve_params(H100, bad)


def test_single_node_fits_do_not_price_messages_that_cross_nodes():
    """Calibration measures on one node: a NIC hop keeps the formula, NVLink hops take the fit."""
    two_nodes = load_cluster("seed-16xh100")
    fits = (CollectiveFit(op="sendrecv", group_size=2, latency_s=3e-6, bw_bytes_per_s=300e9),
            CollectiveFit(op="allreduce", group_size=4, latency_s=20e-6, bw_bytes_per_s=300e9))
    profile = HardwareProfile(gpu_name="H100", gpu_count=8, params=ProfileParams(collectives=fits))
    fitted, formula = build_cost_model(two_nodes, profile, False), build_cost_model(two_nodes, None, False)
    inside, across = two_nodes.route("gpu0", "gpu1"), two_nodes.route("gpu7", "gpu8")
    assert p2p_cost(1_000_000, inside, fitted).time_s == pytest.approx(3e-6 + 1e6 / 300e9)
    assert p2p_cost(1_000_000, across, fitted) == p2p_cost(1_000_000, across, formula)
    assert allreduce_cost(1_000_000, two_nodes.devices[:4], two_nodes, fitted).time_s == pytest.approx(
        20e-6 + 2 * 3 / 4 * 1e6 / 300e9)
    spanning = two_nodes.devices[6:10]
    assert allreduce_cost(1_000_000, spanning, two_nodes, fitted) == allreduce_cost(1_000_000, spanning, two_nodes,
                                                                                   formula)


def test_corrections_are_remembered_per_shape_and_size():
    points = (GemmPoint(m=16, n=4096, k=4096, time_s=50e-6), GemmPoint(m=64, n=4096, k=4096, time_s=80e-6))
    profile = HardwareProfile(gpu_name="H100", gpu_count=1, params=ProfileParams(gemm_points=points))
    shapes = [TokenShape(batch=b, new_tokens=1, context_len=c) for b in (8, 32) for c in (10, 20)]
    op = _gemm(4096, 4096)
    cost, memo = build_cost_model(H100, profile, cuda_graphs=True), PriceMemo()
    expected = [op_cost(op, shape, cost, 0.0) for shape in shapes]
    assert [op_cost(op, s, cost, 0.0, memo) for s in shapes * 2] == expected * 2
    assert len(memo.scales) == 2  # one per GEMM row count; the context does not change a GEMM
    assert cost == build_cost_model(H100, profile, cuda_graphs=True)  # the cost model holds no memo
