"""Launch the collective measurements under torchrun and read back what rank 0 wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import executor

COLLECTIVES_TIMEOUT_S = 420.0


def collective_group_sizes(gpus: int, quick: bool) -> list[int]:
    """2..N; ``quick`` keeps powers of two and N."""
    sizes = list(range(2, gpus + 1))
    if quick:
        sizes = [g for g in sizes if g & (g - 1) == 0 or g == gpus]
    return sizes


def launch_collectives(gpus: int, device_type: str, sizes_bytes: tuple[int, ...], quick: bool,
                       timeout_s: float = COLLECTIVES_TIMEOUT_S) -> dict[str, Any]:
    """Run ``executor.calibrate.collectives`` on ``gpus`` processes; its JSON (raises on failure)."""
    repo_root = str(Path(executor.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["NCCL_NVLS_ENABLE"] = "0"  # no NVLink multicast (SHARP) on the lent machines
    env["TORCH_SYMM_MEM_DISABLE_MULTICAST"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="layerwise-collectives-") as tmp:
        out_path = Path(tmp) / "collectives.json"
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
            "-m", "executor.calibrate.collectives", "--out", str(out_path),
            "--bytes", ",".join(str(b) for b in sizes_bytes),
            "--group-sizes", ",".join(str(g) for g in collective_group_sizes(gpus, quick)),
            "--device", device_type, "--max-iters", "20" if quick else "50",
        ]
        completed = subprocess.run(command, env=env, cwd=repo_root, timeout=timeout_s, check=False,
                                   stdout=subprocess.PIPE, stderr=None, text=True)
        if completed.returncode != 0:
            tail = (completed.stdout or "")[-2000:]
            raise RuntimeError(f"torchrun exited {completed.returncode}: {tail}")
        result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    result["command"] = " ".join([*command[:6], "-m", "executor.calibrate.collectives", "..."])
    return result
