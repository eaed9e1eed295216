"""The hardware floor of a step: the bytes a decode step must read over the measured HBM read
bandwidth, the FLOPs a prefill step must do over the measured matmul rate.

Bytes and FLOPs come from ``topology``'s pure cost functions (``stage_graph_ops`` + ``summarize_ops``,
what the simulator uses): per GPU and step, the stage's weights once per microbatch pass plus the
KV cache of every sequence at the run's context; the slowest stage sets a pipeline's floor.
Rates come from a calibration profile: ``hbm_read_bw_bytes_per_s`` (a streaming read, what decode
does), else the copy figure ``hbm_bw_bytes_per_s`` (read + write over time), and
``matmul_flops_per_s``; without a profile, the GPU data file's datasheet figures. ``Rates.source``
says which, and every table prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from topology.hardware import gpu_preset_for_device, load_gpu
from topology.layer_graph import stage_graph_ops, summarize_ops
from topology.plan import Plan
from topology.profile import HardwareProfile
from topology.workload import Workload


@dataclass(frozen=True)
class Rates:
    hbm_bw_bytes_per_s: float | None
    matmul_flops_per_s: float | None
    source: str  # e.g. "profile h100x1.json: HBM read", "datasheet h100-sxm"


@dataclass(frozen=True)
class Floor:
    bytes_per_gpu: int  # decode: bytes the bottleneck GPU reads per step
    flops_per_gpu: float  # prefill: FLOPs the bottleneck GPU does per step
    floor_s: float | None  # the bottleneck GPU's floor time per step (None without a rate)
    l2_resident: bool  # some stage's weights fit in L2 (the HBM floor may be beaten)


def stage_step_cost(plan: Plan, workload: Workload, stage_index: int) -> tuple[int, float]:
    """(bytes read from HBM, FLOPs) one GPU of a stage needs per step: every microbatch's pass."""
    stage = plan.stages[stage_index]
    ops, _ = stage_graph_ops(plan.model, stage.layers, stage.tp_degree)
    cost = summarize_ops(ops, workload.token_shape(plan.microbatches))
    per_pass_bytes = cost.weight_bytes + cost.kv_read_bytes
    return plan.microbatches * per_pass_bytes, plan.microbatches * cost.flops


def step_floor(plan: Plan, workload: Workload, rates: Rates) -> Floor:
    costs = [stage_step_cost(plan, workload, s.index) for s in plan.stages]
    floor_s: float | None
    if workload.phase == "decode":
        index = max(range(len(costs)), key=lambda i: costs[i][0])
        floor_s = costs[index][0] / rates.hbm_bw_bytes_per_s if rates.hbm_bw_bytes_per_s else None
    else:
        index = max(range(len(costs)), key=lambda i: costs[i][1])
        floor_s = costs[index][1] / rates.matmul_flops_per_s if rates.matmul_flops_per_s else None
    return Floor(bytes_per_gpu=costs[index][0], flops_per_gpu=costs[index][1], floor_s=floor_s,
                 l2_resident=any(s.footprint.weights_bytes <= plan.device_l2_usable_bytes for s in plan.stages))


def rates_from_profile(profile: HardwareProfile, path: Path) -> Rates:
    params = profile.params
    if params.hbm_read_bw_bytes_per_s:
        bw, kind = params.hbm_read_bw_bytes_per_s, "HBM read"
    else:
        bw, kind = params.hbm_bw_bytes_per_s, "HBM copy (the profile has no read figure)"
    return Rates(bw, params.matmul_flops_per_s, f"profile {path.name}: {kind}")


def rates_from_datasheet(gpu_name: str) -> Rates:
    """The GPU data file's figures for a device name; no rates (None) when no file matches (a CPU)."""
    preset = gpu_preset_for_device(gpu_name)
    if preset is None:
        return Rates(None, None, f"none: no GPU data file matches {gpu_name!r} and no profile given")
    spec = load_gpu(preset)
    return Rates(spec.hbm_bw_bytes_per_s, spec.dense_bf16_flops_per_s, f"datasheet {preset}")
