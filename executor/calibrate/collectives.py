"""Collective timing, one process per GPU under torchrun (``layerwise calibrate`` launches it).

    python -m torch.distributed.run --standalone --nproc-per-node N \\
        -m executor.calibrate.collectives --out RAW.json --bytes 1024,4096,... --group-sizes 2,4

All-reduce over groups of the first g ranks (g in ``--group-sizes``) and send/recv from rank 0
to rank 1, each message size timed as a loop of back-to-back operations (CUDA events with
NCCL, the wall clock with gloo on CPUs); a size's time is the slowest rank's. Rank 0 writes
the samples as JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.distributed as dist

from executor.calibrate.timing import burst_time_s
from topology.atomic_io import write_json_atomic

_TARGET_BURST_BYTES = 4 * 1024**3  # bytes per timed loop: many iterations for small messages


def iterations_for(nbytes: int, max_iters: int) -> int:
    return max(3, min(max_iters, _TARGET_BURST_BYTES // max(nbytes, 1)))


def _timed_loop_s(op: Callable[[], object], iters: int, device: torch.device) -> float:
    """Seconds per operation over ``iters`` back-to-back operations (after two warm-ups)."""
    for _ in range(2):
        op()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return burst_time_s([op] * iters, device) / iters


def _slowest_rank_s(local_s: float, device: torch.device) -> float:
    value = torch.tensor([local_s], dtype=torch.float64, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return float(value.item())


def measure(rank: int, world_size: int, device: torch.device, sizes_bytes: list[int], group_sizes: list[int],
            max_iters: int) -> dict[str, Any]:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    elem_bytes = torch.finfo(dtype).bits // 8
    samples: list[dict[str, Any]] = []
    for group_size in group_sizes:
        group = dist.new_group(list(range(group_size)))  # every rank must call new_group
        for nbytes in sizes_bytes:
            buf = torch.ones(max(1, nbytes // elem_bytes), dtype=dtype, device=device)  # (elements,)
            iters = iterations_for(nbytes, max_iters)
            dist.barrier()
            local_s = 0.0
            if rank < group_size:
                local_s = _timed_loop_s(partial(dist.all_reduce, buf, group=group),
                                        iters, device)
            time_s = _slowest_rank_s(local_s, device)
            samples.append({"op": "allreduce", "group_size": group_size, "nbytes": buf.numel() * elem_bytes,
                            "time_s": time_s, "iters": iters})
            if rank == 0:
                print(f"[calibrate] allreduce n={group_size} {nbytes:>11} B: {time_s * 1e6:9.1f} us",
                      file=sys.stderr, flush=True)
            del buf
    for nbytes in sizes_bytes:
        buf = torch.ones(max(1, nbytes // elem_bytes), dtype=dtype, device=device)
        iters = iterations_for(nbytes, max_iters)
        dist.barrier()
        local_s = 0.0
        if rank == 0:
            local_s = _timed_loop_s(partial(dist.send, buf, dst=1), iters, device)
        elif rank == 1:
            local_s = _timed_loop_s(partial(dist.recv, buf, src=0), iters, device)
        time_s = _slowest_rank_s(local_s, device)
        samples.append({"op": "sendrecv", "group_size": 2, "nbytes": buf.numel() * elem_bytes,
                        "time_s": time_s, "iters": iters})
        if rank == 0:
            print(f"[calibrate] sendrecv 0->1 {nbytes:>11} B: {time_s * 1e6:9.1f} us", file=sys.stderr, flush=True)
        del buf
    return {"world_size": world_size, "backend": dist.get_backend(), "samples": samples}


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--bytes", type=_int_list, required=True, help="message sizes, comma-separated")
    parser.add_argument("--group-sizes", type=_int_list, required=True)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--max-iters", type=int, default=50)
    args = parser.parse_args(argv)
    # torchrun's environment names this process; read once here, passed down explicitly.
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if args.device == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    try:
        group_sizes = [g for g in args.group_sizes if 2 <= g <= world_size]
        result = measure(rank, world_size, device, args.bytes, group_sizes, args.max_iters)
        if device.type == "cuda":
            result["nccl_version"] = ".".join(str(v) for v in torch.cuda.nccl.version())
        if rank == 0:
            write_json_atomic(args.out, result)
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
