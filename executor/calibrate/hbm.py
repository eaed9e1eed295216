"""HBM bandwidth: device-to-device copies, (bytes read + bytes written) / time."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from executor.calibrate.grids import CalibrationGrid
from executor.calibrate.timing import Device, median_s, time_burst_s

Progress = Callable[[str], None]


def measure_hbm(device: Device, grid: CalibrationGrid, progress: Progress) -> dict[str, Any]:
    points = []
    for nbytes in grid.hbm_copy_bytes:
        src = torch.empty(nbytes, dtype=torch.uint8, device=device.torch_device).fill_(1)  # (nbytes,)
        dst = torch.empty_like(src)
        per_call_s = time_burst_s([partial(dst.copy_, src)] * 4, device, grid.repeats)
        time_s = median_s(per_call_s)
        moved_bytes = 2 * nbytes  # every byte is read once and written once
        points.append({"buffer_bytes": nbytes, "moved_bytes": moved_bytes, "time_s": time_s,
                       "times_s": per_call_s, "bw_bytes_per_s": moved_bytes / time_s})
        progress(f"hbm copy {nbytes / 2**20:.2f} MiB: {moved_bytes / time_s / 1e12:.3f} TB/s")
        del src, dst
    return {"points": points}
