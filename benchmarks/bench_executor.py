"""Benchmark: how close each GPU run of the executor comes to the hardware floor.

Decode: the bytes each GPU must read per step (its stage's weights once per microbatch pass,
plus the KV cache of every sequence: ``topology``'s pure cost functions) divided by the
GPU's measured copy bandwidth gives the HBM-bandwidth floor; the achieved fraction is
``floor / measured step time`` (the slowest stage sets the floor). Prefill: the FLOPs each GPU
must do per step over the measured dense BF16 matmul throughput, over the step time.

Bandwidth and matmul rate come from a calibration profile (``--profile``, ``params.hbm_bw_bytes_per_s``
and ``params.matmul_flops_per_s``; default: a profile in ``results/profiles/`` whose GPU matches);
without one, the GPU data file's datasheet numbers are used, and the table says so.
Weights that fit in L2 can beat the HBM floor (fraction > 1): the table flags stages whose
plan says ``l2``.

Usage: ``python benchmarks/bench_executor.py [RESULT.json | DIR ...] [--profile P] [--out MD]``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from topology.atomic_io import write_text_atomic
from topology.errors import LayerwiseError
from topology.format import render_table
from topology.hardware import GPUSpec, gpu_names, load_gpu
from topology.layer_graph import layer_ops, summarize_ops
from topology.plan import Plan, plan_from_dict
from topology.profile import HardwareProfile, load_profile
from topology.results import RunResult, load_result
from topology.workload import Workload, workload_from_dict

DEFAULT_RESULTS = Path("results/hardware")
DEFAULT_PROFILES = Path("results/profiles")


@dataclass(frozen=True)
class Rates:
    hbm_bw_bytes_per_s: float
    matmul_flops_per_s: float
    source: str  # "profile <file>" or "datasheet <gpu file>"


@dataclass(frozen=True)
class Floor:
    floor_s: float  # the slowest stage's floor time per step
    bytes_per_gpu: int  # decode: bytes the bottleneck GPU reads per step
    flops_per_gpu: float  # prefill: FLOPs the bottleneck GPU does per step
    l2_resident: bool  # some stage's weights fit in L2 (the HBM floor may be beaten)


def stage_step_cost(plan: Plan, workload: Workload, stage_index: int) -> tuple[int, float]:
    """(bytes read from HBM, FLOPs) one GPU of a stage needs per step: every microbatch's pass."""
    stage = plan.stages[stage_index]
    ops = [op for layer in stage.layers for op in layer_ops(plan.model, layer, stage.tp_degree)]
    cost = summarize_ops(ops, workload.token_shape(plan.microbatches))
    per_pass_bytes = cost.weight_bytes + cost.kv_read_bytes
    return plan.microbatches * per_pass_bytes, plan.microbatches * cost.flops


def run_floor(plan: Plan, workload: Workload, rates: Rates) -> Floor:
    costs = [stage_step_cost(plan, workload, s.index) for s in plan.stages]
    if workload.phase == "decode":
        index = max(range(len(costs)), key=lambda i: costs[i][0])
        floor_s = costs[index][0] / rates.hbm_bw_bytes_per_s
    else:
        index = max(range(len(costs)), key=lambda i: costs[i][1])
        floor_s = costs[index][1] / rates.matmul_flops_per_s
    return Floor(floor_s=floor_s, bytes_per_gpu=costs[index][0], flops_per_gpu=costs[index][1],
                 l2_resident=any(s.weight_residence == "l2" for s in plan.stages))


def gpu_file_for(gpu_name: str) -> str | None:
    """The GPU data file whose product name matches a run's ``environment.gpu_name``."""
    lowered = gpu_name.lower()
    for name in gpu_names():
        if name.split("-")[0] in lowered:
            return name
    return None


def rates_for(result: RunResult, profile: HardwareProfile | None, profile_path: Path | None) -> Rates:
    gpu_name = str(result.environment.get("gpu_name", ""))
    gpu_file = gpu_file_for(gpu_name)
    spec: GPUSpec | None = load_gpu(gpu_file) if gpu_file else None
    if profile is not None and profile.params.hbm_bw_bytes_per_s and profile.params.matmul_flops_per_s:
        return Rates(profile.params.hbm_bw_bytes_per_s, profile.params.matmul_flops_per_s,
                     f"profile {profile_path.name if profile_path else ''}")
    if spec is None:
        raise LayerwiseError("environment.gpu_name", f"no GPU data file matches {gpu_name!r} and no profile given")
    return Rates(spec.hbm_bw_bytes_per_s, spec.dense_bf16_flops_per_s, f"datasheet {gpu_file}")


def find_profile(gpu_name: str, folder: Path) -> tuple[HardwareProfile | None, Path | None]:
    if not folder.is_dir():
        return None, None
    for path in sorted(folder.glob("*.json")):
        try:
            profile = load_profile(path)
        except LayerwiseError:
            continue
        if gpu_file_for(profile.gpu_name) == gpu_file_for(gpu_name) and profile.source == "calibrate":
            return profile, path
    return None, None


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


def rows_for(results: list[tuple[Path, RunResult]], profile_arg: str | None) -> list[list[str]]:
    rows = []
    for path, result in results:
        profile: HardwareProfile | None
        profile_path: Path | None
        if profile_arg:
            profile, profile_path = load_profile(profile_arg), Path(profile_arg)
        else:
            profile, profile_path = find_profile(str(result.environment.get("gpu_name", "")), DEFAULT_PROFILES)
        rates = rates_for(result, profile, profile_path)
        plan = plan_from_dict(result.plan)
        workload = workload_from_dict(dict(result.experiment["workload"]))
        floor = run_floor(plan, workload, rates)
        step_s = result.metrics.step_time_s
        graphs = "graph" if result.metrics.extra.get("cuda_graphs") else "eager"
        what = (f"{floor.bytes_per_gpu / 1e9:.2f} GB @ {rates.hbm_bw_bytes_per_s / 1e12:.2f} TB/s"
                if workload.phase == "decode"
                else f"{floor.flops_per_gpu / 1e12:.1f} TFLOP @ {rates.matmul_flops_per_s / 1e12:.0f} TFLOP/s")
        rows.append([
            path.stem, f"{result.environment.get('gpu_name', '?')} x{result.environment.get('gpu_count', '?')}",
            plan.describe(), workload.phase, f"b{workload.batch_size} c{workload.context_len}"
            if workload.phase == "decode" else f"b{workload.batch_size} s{workload.prompt_len}",
            graphs, f"{result.metrics.tokens_per_s:,.0f}", f"{step_s * 1e3:.3f}", f"{floor.floor_s * 1e3:.3f}",
            f"{floor.floor_s / step_s:.1%}" + (" (L2)" if floor.l2_resident and workload.phase == "decode" else ""),
            what, rates.source,
        ])
    return rows


HEADER = ["run", "GPUs", "plan", "phase", "shape", "mode", "tokens/s", "step ms", "floor ms", "of floor",
          "floor from", "rates"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", default=[str(DEFAULT_RESULTS)], help="result JSONs or folders")
    parser.add_argument("--profile", default=None, help="calibration profile JSON (default: results/profiles/)")
    parser.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    try:
        results = collect_results(args.results)
        if not results:
            print(f"no GPU hardware results under {', '.join(args.results)}", file=sys.stderr)
            return 1
        table = render_table(HEADER, rows_for(results, args.profile))
    except LayerwiseError as exc:
        print(f"bench_executor: error: {exc}", file=sys.stderr)
        return 2
    print(table)
    if args.out:
        write_text_atomic(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
