"""Time TP all-reduces the way the executor now does (executor.pipeline.time_stage_collectives_s):
a burst of one iteration's calls, replayed from a CUDA graph and issued eagerly, on a one-rank
process group. On one GPU this checks that the graph path captures and replays (a one-rank
all-reduce moves no bytes, so the times are launch costs: what eager timing adds and a graph
replay does not pay). Multi-GPU runs measure the real collectives the same way.

Usage: python benchmarks/device/check_graph_collectives.py --out graph-collectives.json [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

from executor.pipeline import time_stage_collectives_s
from topology.atomic_io import write_text_atomic

PAYLOADS = ((64, 1024), (128, 4096), (4, 2048, 4096))  # decode (batch, hidden) and a prefill (b, S, h)
CALLS = 32  # 2 all-reduces x 16 layers: one iteration of a 16-layer stage
REPEATS = 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    with tempfile.TemporaryDirectory() as scratch:
        store = dist.FileStore(str(Path(scratch) / "store"), 1)
        dist.init_process_group("nccl" if cuda else "gloo", store=store, rank=0, world_size=1)
        try:
            group = dist.new_group([0])
            rows = []
            for payload in PAYLOADS:
                for graphs in ((True, False) if cuda else (False,)):
                    run = SimpleNamespace(groups=SimpleNamespace(tp=group), device=device,
                                          dtype=torch.bfloat16 if cuda else torch.float32, use_graphs=graphs,
                                          activity=None)
                    per_call_s = time_stage_collectives_s(run, payload, CALLS, REPEATS)  # type: ignore[arg-type]
                    rows.append({"payload": list(payload), "timing": "graph-replay" if graphs else "eager",
                                 "calls": CALLS, "per_call_s": per_call_s})
                    print(f"{payload!s:>18} {rows[-1]['timing']:>12}: {per_call_s * 1e6:8.2f} us per all-reduce")
        finally:
            dist.destroy_process_group()
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    write_text_atomic(args.out, json.dumps({"device": name, "world_size": 1, "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
