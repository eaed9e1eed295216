"""Where a run happened: GPUs, driver, torch and NCCL versions, host, git commit."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from executor.attention import AttentionChoice

GIT_COMMIT_ENV = "LAYERWISE_GIT_COMMIT"


def git_commit() -> str:
    """``$LAYERWISE_GIT_COMMIT`` if set, else ``git rev-parse HEAD`` of this checkout, else "unknown"."""
    if os.environ.get(GIT_COMMIT_ENV):
        return os.environ[GIT_COMMIT_ENV]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def _driver_version() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else "unknown"


def collect_environment(device: torch.device, backend: str, world_size: int,
                        attention: Sequence[AttentionChoice] = ()) -> dict[str, Any]:
    """Where the run happened, and ``attention``: per phase, the path that ran and why (measured,
    with every candidate's time, forced, or the only candidate)."""
    env: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "backend": backend,
        "world_size": world_size,
        "git_commit": git_commit(),
    }
    if device.type == "cuda":
        nccl = torch.cuda.nccl.version()
        env.update({
            "gpu_name": torch.cuda.get_device_name(device),
            "gpu_count": world_size,
            "gpus_on_host": torch.cuda.device_count(),
            "driver": _driver_version(),
            "cuda": torch.version.cuda,
            "nccl": ".".join(str(part) for part in nccl) if isinstance(nccl, tuple) else str(nccl),
        })
    else:
        env.update({"gpu_name": "cpu", "gpu_count": 0, "cpu_processes": world_size})
    if attention:
        env["attention"] = {choice.phase: choice.to_dict() for choice in attention}
    return env
