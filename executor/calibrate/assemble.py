"""Raw measurements -> a :class:`HardwareProfile` (fitted ``params``, every measurement in ``raw``).

Each fit runs on its own: a section that failed or was skipped leaves its parameters ``None``
(the simulator then keeps the GPU data file's value) and its error in ``raw["fit_errors"]``.
A value that fails a physical check (:mod:`executor.calibrate.checks`) is left out the same
way, with its reason in ``raw["rejected"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from executor.calibrate.checks import reject_unphysical
from executor.calibrate.fit import (
    StreamingBandwidth,
    best_gemm_flops_per_s,
    fit_collectives,
    gemm_summary,
    hot_l2_bw_bytes_per_s,
    per_kernel_s,
    streaming_bandwidth,
    usable_l2_bytes,
)
from executor.calibrate.serving_host import SIM_PARAM as SERVING_HOST_PARAM
from topology.profile import AttentionPoint, CollectiveFit, GemmPoint, HardwareProfile, ProfileParams


def _ok(raw: dict[str, Any], section: str) -> dict[str, Any] | None:
    value = raw.get(section)
    return value if isinstance(value, dict) and "error" not in value and "skipped" not in value else None


def _points(raw: dict[str, Any], section: str) -> list[dict[str, Any]]:
    data = _ok(raw, section)
    return list(data.get("points", [])) if data else []


def build_profile(raw: dict[str, Any], gpu_name: str, gpu_count: int, environment: dict[str, Any]
                  ) -> HardwareProfile:
    fits: dict[str, Any] = {}
    errors: dict[str, str] = {}

    def attempt(name: str, fit: Callable[[], Any]) -> Any:
        try:
            return fit()
        except Exception as exc:  # a fit that fails must not lose the other parameters
            errors[name] = f"{type(exc).__name__}: {exc}"
            return None

    hbm = _points(raw, "hbm")
    copy: StreamingBandwidth | None = attempt("hbm", lambda: streaming_bandwidth(hbm, "copy"))
    read: StreamingBandwidth | None = attempt("hbm_read", lambda: streaming_bandwidth(hbm, "read"))
    for name, stream in (("hbm_copy", copy), ("hbm_read", read)):
        if stream is not None:
            fits[name] = {"method": stream.method, "buffer_bytes": stream.buffer_bytes,
                          "by_method_bytes_per_s": stream.by_method}
    hbm_bw = copy.bw_bytes_per_s if copy else None

    gemm_points = tuple(GemmPoint(m=int(p["m"]), n=int(p["n"]), k=int(p["k"]), time_s=float(p["time_s"]))
                        for p in _points(raw, "gemm"))
    matmul_flops = best_gemm_flops_per_s(gemm_points)
    datasheet = environment.get("datasheet") or {}
    peak = datasheet.get("dense_bf16_flops_per_s") or matmul_flops
    if gemm_points and peak:
        dtype_bytes = 2 if "bfloat16" in str((raw.get("gemm") or {}).get("dtype", "")) else 4
        weights_read_bw = read.bw_bytes_per_s if read else hbm_bw  # decode GEMMs stream (read) their weights
        fits["gemm"] = attempt("gemm", lambda: gemm_summary(gemm_points, float(peak), weights_read_bw, dtype_bytes))

    attention_points = tuple(
        AttentionPoint(batch=int(p["batch"]), heads=int(p["heads"]), kv_heads=int(p["kv_heads"]),
                       head_dim=int(p["head_dim"]), new_tokens=int(p["new_tokens"]),
                       context_len=int(p["context_len"]), time_s=float(p["time_s"]))
        for p in _points(raw, "attention"))

    l2 = _points(raw, "l2")
    l2_usable = l2_bw = None
    if l2:
        sizes = [int(p["weight_bytes"]) for p in l2]
        hot = [float(p["hot_time_s"]) for p in l2]
        l2_usable = attempt("l2", lambda: usable_l2_bytes(sizes, hot, [float(p["cold_time_s"]) for p in l2]))
        l2_bw = attempt("l2_bw", lambda: hot_l2_bw_bytes_per_s(sizes, hot, l2_usable))

    launch = _ok(raw, "launch") or {}
    eager = launch.get("eager")
    graph = launch.get("graph")
    eager_s = attempt("launch_eager", lambda: per_kernel_s([e["kernels"] for e in eager], [e["time_s"] for e in eager])
                      ) if isinstance(eager, list) else None
    graph_s = attempt("launch_graph", lambda: per_kernel_s([e["kernels"] for e in graph], [e["time_s"] for e in graph])
                      ) if isinstance(graph, list) else None

    collectives: tuple[CollectiveFit, ...] = ()
    samples = (_ok(raw, "collectives") or {}).get("samples")
    if samples:
        fitted = attempt("collectives", lambda: fit_collectives(samples))
        if fitted:
            collectives, fits["collectives"] = fitted

    serving = _ok(raw, "serving-host")
    sim_params = {SERVING_HOST_PARAM: float(serving["host_s_per_iteration"])} if serving else {}

    measured = ProfileParams(
        hbm_bw_bytes_per_s=hbm_bw,
        hbm_read_bw_bytes_per_s=read.bw_bytes_per_s if read else None,
        matmul_flops_per_s=matmul_flops,
        l2_usable_bytes=l2_usable,
        l2_bw_bytes_per_s=l2_bw,
        launch_overhead_eager_s=eager_s,
        launch_overhead_graph_s=graph_s,
        collectives=collectives,
        gemm_points=gemm_points,
        attention_points=attention_points,
        sim_params=sim_params,
    )
    params, rejected = reject_unphysical(measured, dict(environment.get("datasheet") or {}), samples or ())
    full_raw = dict(raw)
    full_raw["fits"] = fits
    if errors:
        full_raw["fit_errors"] = errors
    if rejected:
        full_raw["rejected"] = [r.to_dict() for r in rejected]
    return HardwareProfile(gpu_name=gpu_name, gpu_count=gpu_count, params=params, environment=environment,
                           raw=full_raw, source="calibrate")
