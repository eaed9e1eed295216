"""HBM bandwidth: copies (bytes read + bytes written) / time, and streaming reads (bytes read) / time.

Decode only reads (weights and KV cache), and a read stream does not pay the read/write
turnaround a copy pays, so the two rates differ; both are measured, each by more than one
method, because how a copy is issued changes its rate:

* ``copy:memcpy-graph``: ``dst.copy_(src)`` (a same-dtype copy is a ``cudaMemcpyAsync``)
  captured in a CUDA graph, as every other calibration burst (the method of the first profiles);
* ``copy:memcpy-events``: the same copies issued eagerly, timed with CUDA events;
* ``copy:kernel``: ``torch.neg(src, out=dst)`` in BF16, an elementwise kernel on the SMs (what the
  executor's norms, activations and residual adds are);
* ``read:sum``: ``torch.sum`` of a BF16 buffer (a reduction reads every byte and writes one value).

Each point records its method, kind (``copy`` or ``read``) and the bytes it moved; the
profile's figures are chosen in :mod:`executor.calibrate.fit` (:func:`streaming_bandwidth`).
On a CPU only eager timing exists, so the ``-graph``/``-events`` distinction collapses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from executor.calibrate.grids import CalibrationGrid
from executor.calibrate.timing import Device, median_s, time_burst_s

Progress = Callable[[str], None]
CALLS_PER_BURST = 4


@dataclass(frozen=True)
class StreamMethod:
    name: str  # "<kind>:<how>"
    kind: str  # "copy" (bytes read + written) or "read" (bytes read)
    use_graph: bool


def stream_methods(device: Device) -> tuple[StreamMethod, ...]:
    if not device.is_cuda:
        return (StreamMethod("copy:memcpy-events", "copy", False), StreamMethod("copy:kernel", "copy", False),
                StreamMethod("read:sum", "read", False))
    return (StreamMethod("copy:memcpy-graph", "copy", True), StreamMethod("copy:memcpy-events", "copy", False),
            StreamMethod("copy:kernel", "copy", True), StreamMethod("read:sum", "read", True))


def _calls(method: StreamMethod, src: torch.Tensor, dst: torch.Tensor) -> list[Callable[[], object]]:
    """``CALLS_PER_BURST`` calls of the method on ``src`` (bytes, viewed as BF16 where a kernel computes)."""
    how = method.name.split(":", 1)[1]
    if how.startswith("memcpy"):
        call: Callable[[], object] = partial(dst.copy_, src)
    elif how == "kernel":
        call = partial(torch.neg, src.view(torch.bfloat16), out=dst.view(torch.bfloat16))
    elif how == "sum":
        call = partial(torch.sum, src.view(torch.bfloat16))
    else:
        raise ValueError(f"unknown stream method {method.name!r}")
    return [call] * CALLS_PER_BURST


def measure_hbm(device: Device, grid: CalibrationGrid, progress: Progress) -> dict[str, Any]:
    points = []
    for nbytes in grid.hbm_copy_bytes:
        src = torch.empty(nbytes, dtype=torch.uint8, device=device.torch_device).fill_(1)  # (nbytes,)
        dst = torch.empty_like(src)
        for method in stream_methods(device):
            per_call_s = time_burst_s(_calls(method, src, dst), device, grid.repeats, use_graph=method.use_graph)
            time_s = median_s(per_call_s)
            moved_bytes = 2 * nbytes if method.kind == "copy" else nbytes  # a copy reads and writes each byte
            points.append({"method": method.name, "kind": method.kind, "buffer_bytes": nbytes,
                           "moved_bytes": moved_bytes, "time_s": time_s, "times_s": per_call_s,
                           "bw_bytes_per_s": moved_bytes / time_s})
            progress(f"hbm {method.name} {nbytes / 2**20:.2f} MiB: {moved_bytes / time_s / 1e12:.3f} TB/s")
        del src, dst
    return {"points": points}
