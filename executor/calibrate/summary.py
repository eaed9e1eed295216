"""The short table ``layerwise calibrate`` prints at the end: measured versus datasheet."""

from __future__ import annotations

from topology.profile import HardwareProfile

# (parameter, datasheet key, scale to display, unit)
_ROWS = (
    ("hbm_bw_bytes_per_s", "hbm_bw_bytes_per_s", 1e-12, "TB/s"),
    ("hbm_read_bw_bytes_per_s", "hbm_bw_bytes_per_s", 1e-12, "TB/s"),
    ("matmul_flops_per_s", "dense_bf16_flops_per_s", 1e-12, "TFLOP/s"),
    ("l2_usable_bytes", "l2_usable_bytes", 2.0**-20, "MiB"),
    ("l2_bw_bytes_per_s", "l2_bw_bytes_per_s", 1e-12, "TB/s"),
    ("launch_overhead_eager_s", "launch_overhead_eager_s", 1e6, "us"),
    ("launch_overhead_graph_s", "launch_overhead_graph_s", 1e6, "us"),
)


def _fmt(value: float | None, scale: float) -> str:
    return "-" if value is None else f"{value * scale:.3g}"


def summary_table(profile: HardwareProfile) -> str:
    datasheet = profile.environment.get("datasheet") or {}
    lines = [f"{profile.gpu_name} x {profile.gpu_count}", f"{'parameter':<26}{'measured':>12}{'datasheet':>12}  unit"]
    for name, sheet_key, scale, unit in _ROWS:
        measured = getattr(profile.params, name)
        lines.append(f"{name:<26}{_fmt(measured, scale):>12}{_fmt(datasheet.get(sheet_key), scale):>12}  {unit}")
    for name, value in sorted(profile.params.sim_params.items()):  # serving_iteration_host_s
        lines.append(f"{name:<26}{value * 1e6:>12.3g}{'-':>12}  us")
    lines.append(f"{'gemm points':<26}{len(profile.params.gemm_points):>12}")
    lines.append(f"{'attention points':<26}{len(profile.params.attention_points):>12}")
    for fit in profile.params.collectives:
        lines.append(f"{fit.op + ' n=' + str(fit.group_size):<26}{fit.latency_s * 1e6:>10.1f}us"
                     f"{fit.bw_bytes_per_s * 1e-9:>10.1f}GB/s")
    collectives = profile.raw.get("collectives")
    if isinstance(collectives, dict) and "skipped" in collectives:
        lines.append(f"{'collectives':<26}{collectives['skipped']:>12}")
    for entry in profile.raw.get("rejected") or []:
        lines.append(f"REJECTED {entry['field']} = {entry['value']:.4g}: {entry['reason']}")
    failed = [name for name, value in profile.raw.items() if isinstance(value, dict) and "error" in value]
    if failed:
        lines.append(f"FAILED sections (errors in raw): {', '.join(failed)}")
    return "\n".join(lines)
