"""The shape study on one GPU (issue 22): every shape family's step times (the executor in this
process, written as results ``layerwise validate`` reads) and its kernels timed alone.

    python benchmarks/device/shape_study.py --out DIR [--device cpu] [--only REGEX] [--steps-wall-s S]
                                            [--kernels-wall-s S]

Writes ``DIR/<family>/<case>.json`` (one result per case), ``DIR/kernels/<shape>.json`` and
``DIR/summary.json`` (every case's status and wall time, rewritten as it goes), and prints a short
table last. Steps run first, decode before prefill; each part stops starting new work past its wall
budget, so a short lease still returns whole files. See ``benchmarks/shape_study/families.py``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shape_study package
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: executor, topology

import torch
from shape_study.families import cases, cpu_cases
from shape_study.kernels import measure_kernels
from shape_study.steps import run_step_case

from executor.calibrate.timing import Device
from topology.atomic_io import write_json_atomic
from topology.hardware import gpu_preset_for_device

GPU_FREE_MEMORY_SHARE = 0.4


def _say(message: str) -> None:
    print(f"[shape-study] {message}", file=sys.stderr, flush=True)


def _device(requested: str) -> torch.device:
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    torch.cuda.set_device(0)
    return torch.device("cuda", 0)


def _cluster(device: torch.device) -> str:
    if device.type != "cuda":
        return "h100x1"  # a CPU plumbing run: the cluster only bounds the footprint
    preset = gpu_preset_for_device(torch.cuda.get_device_name(device))
    return f"{preset.split('-')[0]}x1" if preset else "h100x1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--only", default=None, help="regular expression on case and shape names")
    parser.add_argument("--steps-wall-s", type=float, default=330.0)
    parser.add_argument("--kernels-wall-s", type=float, default=150.0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    device = _device(args.device)
    cluster = _cluster(device)
    only = re.compile(args.only) if args.only else None
    todo = [c for c in (cases() if device.type == "cuda" else cpu_cases()) if only is None or only.search(c.name)]
    shapes = list(dict.fromkeys(c.shape for c in todo))
    summary: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                               "cluster": cluster, "torch": torch.__version__, "cases": {}, "kernels": {}}
    _say(f"{len(todo)} cases of {len(shapes)} shapes on {summary['device']} (cluster {cluster})")
    started = time.perf_counter()
    for index, case in enumerate(todo, start=1):
        if time.perf_counter() - started > args.steps_wall_s:
            summary["cases"][case.name] = {"status": "not run (wall budget)"}
            continue
        outcome = run_step_case(case, cluster, device)
        result = outcome.pop("result", None)
        if result is not None:
            write_json_atomic(out / case.shape.family / f"{case.name}.json", result)
            outcome["step_s"] = result["metrics"]["step_time_s"]
        summary["cases"][case.name] = outcome
        step = f"{outcome['step_s'] * 1e3:.3f} ms" if "step_s" in outcome else outcome.get("message", "")
        _say(f"[{index}/{len(todo)}] {case.name}: {outcome['status']} {step} ({outcome['wall_s']:.1f} s)")
        write_json_atomic(out / "summary.json", summary)
    started = time.perf_counter()
    timing_device = Device(device, torch.bfloat16 if device.type == "cuda" else torch.float32,
                           int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0))
                           if device.type == "cuda" else 0)
    for shape in shapes:
        if time.perf_counter() - started > args.kernels_wall_s:
            summary["kernels"][shape.name] = "not run (wall budget)"
            continue
        budget = int(torch.cuda.mem_get_info(device)[0] * GPU_FREE_MEMORY_SHARE) if device.type == "cuda" else 2**28
        kernels = measure_kernels(shape, timing_device, budget, 0, _say)
        write_json_atomic(out / "kernels" / f"{shape.name}.json", kernels)
        summary["kernels"][shape.name] = "ok"
        write_json_atomic(out / "summary.json", summary)
    ok = [name for name, c in summary["cases"].items() if c.get("status") == "ok"]
    print(f"shape study: {len(ok)}/{len(todo)} cases ok, kernels of "
          f"{sum(v == 'ok' for v in summary['kernels'].values())}/{len(shapes)} shapes -> {out}")
    for name in ok[-12:]:
        print(f"  {name:<48} {summary['cases'][name]['step_s'] * 1e3:9.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
