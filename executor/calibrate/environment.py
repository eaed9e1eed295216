"""What the profile was measured on: GPUs, driver, library versions, host, date, git commit."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import executor
from topology.hardware import gpu_preset_for_device, load_gpu


def _command_output(command: list[str], cwd: str | None = None) -> str | None:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=20, cwd=cwd, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout.strip() if completed.returncode == 0 and completed.stdout.strip() else None


def git_commit() -> str:
    from_env = os.environ.get("LAYERWISE_GIT_COMMIT")
    if from_env:
        return from_env
    repo_root = str(Path(executor.__file__).resolve().parent.parent)
    return _command_output(["git", "rev-parse", "HEAD"], cwd=repo_root) or "unknown"


def collect_environment(device_type: str, gpus_used: int) -> dict[str, Any]:
    env: dict[str, Any] = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "device_type": device_type,
        "gpus_used": gpus_used,
    }
    if device_type == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update({
            "gpu_name": torch.cuda.get_device_name(0),
            "gpu_count_visible": torch.cuda.device_count(),
            "cuda": torch.version.cuda,
            "nccl": ".".join(str(v) for v in torch.cuda.nccl.version()),
            "sm_count": props.multi_processor_count,
            "hbm_capacity_bytes": props.total_memory,
            "l2_cache_bytes": int(getattr(props, "L2_cache_size", 0)),
            "driver": _command_output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]),
            "nvidia_smi_gpus": _command_output(
                ["nvidia-smi", "--query-gpu=index,name,memory.total,clocks.max.sm", "--format=csv,noheader"]),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        })
        if env["driver"]:
            env["driver"] = env["driver"].splitlines()[0]
    else:
        env.update({"gpu_name": f"cpu ({platform.processor() or platform.machine()})",
                    "gpu_count_visible": 0, "cpu_count": os.cpu_count()})
    preset = gpu_preset_for_device(str(env["gpu_name"])) if device_type == "cuda" else None
    env["datasheet_preset"] = preset
    if preset:
        spec = load_gpu(preset)
        env["datasheet"] = {"dense_bf16_flops_per_s": spec.dense_bf16_flops_per_s,
                            "hbm_bw_bytes_per_s": spec.hbm_bw_bytes_per_s,
                            "l2_capacity_bytes": spec.l2_capacity_bytes,
                            "l2_usable_bytes": spec.l2_usable_bytes,
                            "l2_bw_bytes_per_s": spec.l2_bw_bytes_per_s,
                            "launch_overhead_eager_s": spec.launch_overhead_eager_s,
                            "launch_overhead_graph_s": spec.launch_overhead_graph_s}
    return env
