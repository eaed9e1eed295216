"""Profile JSON round trip and plots from a synthetic profile (no measurement)."""

from __future__ import annotations

from pathlib import Path

from executor.calibrate.assemble import build_profile
from executor.calibrate.fit import collective_factor
from executor.calibrate.grids import gpu_grid, model_weight_shapes
from executor.calibrate.plots import plot_profile
from topology.model import load_model
from topology.profile import load_profile, write_profile

MiB = 2**20


def synthetic_raw() -> dict[str, object]:
    """Raw measurements drawn from known parameters (no noise): HBM 3 TB/s, L2 32 MiB at 8 TB/s."""
    gemm = [{"m": m, "n": n, "k": k, "time_s": max(2 * m * n * k / 600e12, n * k * 2 / 3e12) + 2e-6}
            for m in (1, 16, 256, 4096) for n, k in ((12288, 4096), (4096, 16384))]
    l2 = []
    for size in (8 * MiB, 16 * MiB, 32 * MiB, 64 * MiB):
        cold_s = 1e-6 + size / 3e12
        hot_s = 1e-6 + size / 8e12 if size <= 32 * MiB else cold_s
        l2.append({"weight_bytes": size, "rows": 64, "hot_time_s": hot_s, "cold_time_s": cold_s,
                   "hot_bw_bytes_per_s": size / hot_s, "cold_bw_bytes_per_s": size / cold_s})
    samples = [{"op": op, "group_size": g, "nbytes": b,
                "time_s": 20e-6 + collective_factor(op, g) * b / 200e9}
               for op, g in (("allreduce", 2), ("allreduce", 4), ("sendrecv", 2))
               for b in (1024 * 4**i for i in range(11))]
    return {
        "hbm": {"points": [{"method": method, "kind": method[:4], "buffer_bytes": s * MiB,
                            "moved_bytes": factor * s * MiB, "time_s": 5e-6 + factor * s * MiB / bw}
                           for s in (256, 1024)
                           for method, factor, bw in (("copy:memcpy-graph", 2, 3e12), ("read:sum", 1, 3.2e12))]},
        "gemm": {"dtype": "torch.bfloat16", "points": gemm},
        "attention": {"points": [{"batch": b, "heads": 32, "kv_heads": 32, "head_dim": 128, "new_tokens": 1,
                                  "context_len": c, "time_s": 5e-6 + b * c * 32 * 128 * 4 / 3e12}
                                 for b in (1, 8) for c in (128, 1024)]},
        "l2": {"nominal_l2_bytes": 50 * MiB, "points": l2},
        "launch": {"eager": [{"kernels": n, "time_s": 1e-4 + n * 5e-6} for n in (100, 1000)],
                   "graph": [{"kernels": n, "time_s": 1e-5 + n * 1.5e-6} for n in (100, 1000)]},
        "collectives": {"world_size": 4, "backend": "nccl", "samples": samples},
    }


def test_build_profile_fits_the_known_parameters() -> None:
    profile = build_profile(synthetic_raw(), "synthetic", 4, {"datasheet": {"dense_bf16_flops_per_s": 1e15}})
    params = profile.params
    assert abs(params.hbm_bw_bytes_per_s / 3e12 - 1) < 0.01  # type: ignore[operator]
    assert abs(params.hbm_read_bw_bytes_per_s / 3.2e12 - 1) < 0.02  # type: ignore[operator]  # 5 us of 340
    assert "rejected" not in profile.raw
    assert params.l2_usable_bytes == 32 * MiB
    assert abs(params.launch_overhead_eager_s / 5e-6 - 1) < 1e-6  # type: ignore[operator]
    assert abs(params.launch_overhead_graph_s / 1.5e-6 - 1) < 1e-6  # type: ignore[operator]
    assert len(params.gemm_points) == 8 and len(params.attention_points) == 4
    fit = params.collective("allreduce", 4)
    assert fit is not None and abs(fit.latency_s / 20e-6 - 1) < 0.01 and abs(fit.bw_bytes_per_s / 200e9 - 1) < 0.01
    assert "gemm" in profile.raw["fits"] and "collectives" in profile.raw["fits"]


def test_profile_json_round_trip(tmp_path: Path) -> None:
    profile = build_profile(synthetic_raw(), "synthetic", 4, {"gpu_name": "synthetic"})
    path = write_profile(tmp_path / "profile.json", profile)
    assert load_profile(path) == profile


def test_plot_renders_png(tmp_path: Path) -> None:
    profile = build_profile(synthetic_raw(), "synthetic", 4, {})
    png = plot_profile(profile, tmp_path / "profile.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = build_profile({"collectives": {"skipped": "not measured: 1 GPU"}}, "empty", 1, {})
    assert plot_profile(empty, tmp_path / "empty.png").stat().st_size > 1000


def test_gpu_grid_covers_seed_tp_shapes() -> None:
    seed = load_model("seed-dense-16")
    shapes = {(s.n, s.k) for s in model_weight_shapes(seed)}
    for tp in (1, 2, 4, 8):
        assert {(12288 // tp, 4096), (4096, 4096 // tp), (32768 // tp, 4096), (4096, 16384 // tp)} <= shapes
    grid = gpu_grid((seed, load_model("small-1024")), quick=False)
    assert grid.decode_rows == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    assert (3072, 1024) in {(s.n, s.k) for s in grid.gemm_shapes}  # small-1024's QKV
    assert grid.collective_bytes[0] == 1024 and grid.collective_bytes[-1] == 1024 * MiB
