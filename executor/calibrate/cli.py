"""``layerwise calibrate``: measure this node and write a hardware profile JSON (and its plot).

Sections run one after another, each on its own: a section that fails records its error in
``raw`` and the run goes on; the profile is rewritten (atomically) after every section, so an
interrupted run still leaves everything measured so far.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from executor.calibrate.assemble import build_profile
from executor.calibrate.attention import measure_attention
from executor.calibrate.collectives_launch import launch_collectives
from executor.calibrate.environment import collect_environment
from executor.calibrate.gemm import measure_gemm
from executor.calibrate.grids import CalibrationGrid, cpu_grid, gpu_grid
from executor.calibrate.hbm import measure_hbm
from executor.calibrate.l2 import measure_l2
from executor.calibrate.launch import measure_launch
from executor.calibrate.plots import plot_profile
from executor.calibrate.summary import summary_table
from executor.calibrate.timing import Device
from topology.atomic_io import check_output_file
from topology.errors import LayerwiseError
from topology.model import load_model, model_names
from topology.profile import HardwareProfile, load_profile, write_profile

SECTIONS = ("launch", "hbm", "l2", "gemm", "attention", "collectives")
GPU_MODELS = ("seed-dense-16", "small-1024")
CPU_MODELS = ("tiny-test",)
CPU_BUDGET_BYTES = 256 * 1024 * 1024  # rotation buffers on a CPU plumbing run
GPU_FREE_MEMORY_SHARE = 0.4  # rotation buffers may take this share of free GPU memory

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="profile.json", help="profile JSON to write (default: profile.json)")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs to use (default: all visible)")
    parser.add_argument("--model", action="append", default=None, metavar="PRESET",
                        help=f"model preset whose weight shapes to measure (repeatable; default: "
                             f"{', '.join(GPU_MODELS)}; on cpu: {', '.join(CPU_MODELS)})")
    parser.add_argument("--quick", action="store_true", help="smaller grids (~1-2 minutes on one H100)")
    parser.add_argument("--plot", action="store_true", help="also save PROFILE.png beside the profile")
    parser.add_argument("--plot-only", metavar="PROFILE", default=None,
                        help="only plot an existing profile (PROFILE.png beside it)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="cpu: a plumbing run with tiny sizes (numbers mean nothing)")
    parser.add_argument("--only", default=None, help=f"comma-separated sections to run ({','.join(SECTIONS)})")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random test data")

def _progress(message: str) -> None:
    print(f"[calibrate] {message}", file=sys.stderr, flush=True)

def _sections(args: argparse.Namespace) -> tuple[str, ...]:
    chosen = [s.strip() for s in (args.only or ",".join(SECTIONS)).split(",") if s.strip()]
    skipped = {s.strip() for s in args.skip.split(",") if s.strip()}
    for name in [*chosen, *skipped]:
        if name not in SECTIONS:
            raise LayerwiseError("--only/--skip", f"unknown section {name!r} (known: {', '.join(SECTIONS)})")
    return tuple(s for s in SECTIONS if s in chosen and s not in skipped)

def _device(args: argparse.Namespace) -> tuple[Device, int]:
    device_type = args.device
    if device_type == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        if device_type == "cpu":
            _progress("no CUDA GPU visible: a cpu plumbing run (numbers mean nothing)")
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise LayerwiseError("--device", "cuda asked for but no CUDA GPU is visible (use --device cpu)")
        visible = torch.cuda.device_count()
        gpus = visible if args.gpus is None else args.gpus
        if not 1 <= gpus <= visible:
            raise LayerwiseError("--gpus", f"{gpus} is not between 1 and the {visible} visible GPUs")
        torch_device = torch.device("cuda", 0)
        torch.cuda.set_device(torch_device)
        l2_bytes = int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0))
        return Device(torch_device, torch.bfloat16, l2_bytes), gpus
    gpus = 1 if args.gpus is None else args.gpus
    if gpus < 1:
        raise LayerwiseError("--gpus", f"must be >= 1, got {gpus}")
    return Device(torch.device("cpu"), torch.float32, 0), gpus

def _budget_bytes(device: Device) -> int:
    if device.is_cuda:
        free_bytes, _ = torch.cuda.mem_get_info(device.torch_device)
        return int(free_bytes * GPU_FREE_MEMORY_SHARE)
    return CPU_BUDGET_BYTES

def _grid(args: argparse.Namespace, device: Device) -> CalibrationGrid:
    names = tuple(args.model) if args.model else (GPU_MODELS if device.is_cuda else CPU_MODELS)
    for name in names:
        if name not in model_names():
            raise LayerwiseError("--model", f"unknown preset {name!r} (known: {', '.join(model_names())})")
    models = tuple(load_model(name) for name in names)
    return gpu_grid(models, args.quick) if device.is_cuda else cpu_grid(models, args.quick)

def _measure(name: str, device: Device, gpus: int, grid: CalibrationGrid, args: argparse.Namespace
             ) -> dict[str, Any]:
    if name == "launch":
        return measure_launch(device, grid, _progress)
    if name == "hbm":
        return measure_hbm(device, grid, _progress)
    if name == "l2":
        return measure_l2(device, grid, _budget_bytes(device), args.seed, _progress)
    if name == "gemm":
        return measure_gemm(device, grid, _budget_bytes(device), args.seed, _progress)
    if name == "attention":
        return measure_attention(device, grid, _budget_bytes(device), args.seed, _progress)
    if name == "collectives":
        if gpus < 2:
            return {"skipped": "not measured: 1 GPU"}
        if device.is_cuda:
            torch.cuda.empty_cache()  # leave the GPUs' memory to the torchrun processes
        return launch_collectives(gpus, device.torch_device.type, grid.collective_bytes, args.quick)
    raise ValueError(f"unknown section {name!r}")

def calibrate(args: argparse.Namespace) -> HardwareProfile:
    device, gpus = _device(args)
    sections = _sections(args)
    grid = _grid(args, device)
    try:
        environment = collect_environment(device.torch_device.type, gpus)
    except Exception as exc:  # a missing tool must not stop the measurements
        environment = {"error": f"{type(exc).__name__}: {exc}", "torch": torch.__version__,
                       "gpu_name": torch.cuda.get_device_name(0) if device.is_cuda else "cpu"}
    environment["quick"] = bool(args.quick)
    environment["command"] = "layerwise calibrate " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else [])
    gpu_name = str(environment["gpu_name"])
    _progress(f"{gpu_name} x {gpus}, sections: {', '.join(sections)}, grid {'quick' if args.quick else 'default'}")
    raw: dict[str, Any] = {"section_seconds": {}}
    profile = build_profile(raw, gpu_name, gpus, environment)
    for name in sections:
        begin_s = time.perf_counter()
        try:
            raw[name] = _measure(name, device, gpus, grid, args)
        except Exception as exc:  # one failing section must not lose the others
            raw[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8)}
            _progress(f"{name} FAILED: {type(exc).__name__}: {exc}")
            if device.is_cuda:
                torch.cuda.empty_cache()
        raw["section_seconds"][name] = time.perf_counter() - begin_s
        _progress(f"{name} done in {raw['section_seconds'][name]:.1f} s")
        profile = build_profile(raw, gpu_name, gpus, environment)
        write_profile(args.out, profile)
    if not sections:
        write_profile(args.out, profile)
    return profile

def _plot(profile: HardwareProfile, profile_path: Path) -> Path | None:
    try:
        return plot_profile(profile, profile_path.with_suffix(".png"))
    except ModuleNotFoundError as exc:  # matplotlib is optional (the 'report' extra)
        _progress(f"no plot: missing module {exc.name!r}")
        return None

def check_outputs(args: argparse.Namespace) -> None:
    """Before any measurement: the profile and its plot can be written."""
    if args.plot_only:
        check_output_file(Path(args.plot_only).with_suffix(".png"), "--plot-only")
        return
    check_output_file(args.out, "--out")
    if args.plot:
        check_output_file(Path(args.out).with_suffix(".png"), "--plot")


def run(args: argparse.Namespace) -> int:
    check_outputs(args)
    if args.plot_only:
        path = Path(args.plot_only)
        png = _plot(load_profile(path), path)
        if png:
            print(f"wrote {png}")
        return 0 if png else 1
    profile = calibrate(args)
    print(summary_table(profile))
    print(f"wrote {args.out}")
    if args.plot:
        png = _plot(profile, Path(args.out))
        if png:
            print(f"wrote {png}")
    rejected = profile.raw.get("rejected") or []
    for entry in rejected:  # left out of the profile: the simulator keeps the data file's value
        print(f"layerwise calibrate: {entry['field']} = {entry['value']:.4g} rejected: {entry['reason']}",
              file=sys.stderr)
    return 1 if rejected else 0
