"""The floor table of measured runs: result JSONs of ``layerwise run`` / ``python -m executor.suite``
(``source: hardware``, ``gpu_count > 0``) against the floor of their own plan and workload."""

from __future__ import annotations

from pathlib import Path

from executor_bench.floor import Rates, rates_from_datasheet, rates_from_profile, step_floor
from topology.errors import LayerwiseError
from topology.hardware import gpu_preset_for_device
from topology.plan import plan_from_dict
from topology.profile import HardwareProfile, load_profile
from topology.results import RunResult, load_result
from topology.workload import workload_from_dict

DEFAULT_PROFILES = Path("results/profiles")
HEADER = ["run", "GPUs", "plan", "phase", "shape", "mode", "tokens/s", "step ms", "floor ms", "of floor",
          "floor from", "rates"]


def find_profile(gpu_name: str, folder: Path) -> tuple[HardwareProfile, Path] | None:
    """A calibrated profile in ``folder`` of the same GPU family as ``gpu_name``."""
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.json")):
        try:
            profile = load_profile(path)
        except LayerwiseError:
            continue
        if profile.source == "calibrate" and gpu_preset_for_device(profile.gpu_name) == gpu_preset_for_device(gpu_name):
            return profile, path
    return None


def collect_results(paths: list[str]) -> list[tuple[Path, RunResult]]:
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        files += sorted(path.rglob("*.json")) if path.is_dir() else [path]
    out = []
    for path in files:
        if path.name == "suite-summary.json":
            continue
        try:
            result = load_result(path)
        except LayerwiseError:
            continue
        if result.source == "hardware" and result.environment.get("gpu_count", 0):
            out.append((path, result))
    return out


def _rates(result: RunResult, profile_arg: str | None) -> Rates:
    gpu_name = str(result.environment.get("gpu_name", ""))
    if profile_arg:
        return rates_from_profile(load_profile(profile_arg), Path(profile_arg))
    found = find_profile(gpu_name, DEFAULT_PROFILES)
    if found is not None:
        return rates_from_profile(*found)
    rates = rates_from_datasheet(gpu_name)
    if rates.hbm_bw_bytes_per_s is None:
        raise LayerwiseError("environment.gpu_name", f"no GPU data file matches {gpu_name!r} and no profile given")
    return rates


def run_rows(results: list[tuple[Path, RunResult]], profile_arg: str | None) -> list[list[str]]:
    rows = []
    for path, result in results:
        rates = _rates(result, profile_arg)
        plan = plan_from_dict(result.plan)
        workload = workload_from_dict(dict(result.experiment["workload"]))
        floor = step_floor(plan, workload, rates)
        step_s = result.metrics.step_time_s
        floor_s = floor.floor_s or 0.0
        decode = workload.phase == "decode"
        shape = f"b{workload.batch_size} " + (f"c{workload.context_len}" if decode else f"s{workload.prompt_len}")
        what = (f"{floor.bytes_per_gpu / 1e9:.2f} GB @ {(rates.hbm_bw_bytes_per_s or 0) / 1e12:.2f} TB/s" if decode
                else f"{floor.flops_per_gpu / 1e12:.1f} TFLOP @ {(rates.matmul_flops_per_s or 0) / 1e12:.0f} TFLOP/s")
        graphs = result.metrics.hardware is not None and result.metrics.hardware.cuda_graphs
        rows.append([
            path.stem, f"{result.environment.get('gpu_name', '?')} x{result.environment.get('gpu_count', '?')}",
            plan.describe(), workload.phase,
            shape,
            "graph" if graphs else "eager", f"{result.metrics.tokens_per_s:,.0f}",
            f"{step_s * 1e3:.3f}", f"{floor_s * 1e3:.3f}",
            f"{floor_s / step_s:.1%}" + (" (L2)" if floor.l2_resident and decode else ""), what, rates.source,
        ])
    return rows
