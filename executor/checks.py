"""Reject a plan the executor cannot run, before any process group starts (one clear line each)."""

from __future__ import annotations

from topology.errors import LayerwiseError
from topology.model import tp_degree_problem
from topology.plan import Plan
from topology.workload import Workload

MEMORY_HEADROOM_BYTES = 2 * 1024**3  # CUDA context, NCCL buffers, graph pools, allocator slack


def check_plan_shape(plan: Plan, world_size: int) -> None:
    """One process per device of the plan; a model the executor runs (BF16 or float32, sequential blocks,
    each stage's TP degree dividing its heads and widths). Fixed-batch and serving runs alike."""
    if world_size != plan.num_devices:
        raise LayerwiseError(
            "plan.devices",
            f"plan {plan.describe()} needs {plan.num_devices} processes (one per device), "
            f"but the world size is {world_size}",
        )
    model = plan.model
    if model.dtype_bytes not in (2, 4):
        raise LayerwiseError("model.dtype_bytes", f"the executor runs BF16 (2) or float32 (4), not {model.dtype_bytes}")
    if model.block != "sequential":
        raise LayerwiseError("model.block", f"the executor runs sequential (pre-norm) blocks; model {model.name!r} "
                                            f"is {model.block!r} (the simulator models it)")
    for stage in plan.stages:
        problem = tp_degree_problem(model, stage.tp_degree)
        if problem is not None:
            raise LayerwiseError(f"stages[{stage.index}].tp_degree", problem)


def check_plan_runs(plan: Plan, workload: Workload, world_size: int, fill: str) -> None:
    """The plan matches the world size, the model's dimensions and the workload."""
    check_plan_shape(plan, world_size)
    if workload.batch_size % plan.microbatches:
        raise LayerwiseError("plan.microbatches",
                             f"microbatches={plan.microbatches} does not divide batch_size={workload.batch_size}")
    if workload.phase == "decode" and fill == "prefill" and workload.context_len < 2:
        raise LayerwiseError("workload.context_len", "filling the cache by a prefill needs context_len >= 2")


def check_device_memory(plan: Plan, rank: int, free_bytes: int) -> None:
    """The rank's stage footprint (weights, KV cache, activations) fits in this GPU's free memory."""
    stage = plan.stage_of_device(plan.devices[rank])
    need = stage.footprint.total_bytes + MEMORY_HEADROOM_BYTES
    if need > free_bytes:
        raise LayerwiseError(
            f"stages[{stage.index}].footprint",
            f"rank {rank} needs {need / 1e9:.2f} GB (weights {stage.footprint.weights_bytes / 1e9:.2f}, "
            f"KV {stage.footprint.kv_cache_bytes / 1e9:.2f}, activations {stage.footprint.activation_bytes / 1e9:.2f}, "
            f"headroom {MEMORY_HEADROOM_BYTES / 1e9:.2f}) but the GPU has {free_bytes / 1e9:.2f} GB free",
        )
