"""Calibrating a node: measure each section in turn and write the hardware profile as it grows.

Sections run one after another, each on its own: a section that fails records its error in
``raw`` and the run goes on; the profile is rewritten (atomically) after every section, so an
interrupted run still leaves everything measured so far. ``layerwise calibrate``
(:mod:`layerwise.commands.calibrate`) builds a :class:`CalibrationRequest` and calls :func:`calibrate`.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
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
from executor.calibrate.serving_host import measure_serving_host
from executor.calibrate.timing import Device
from topology.errors import LayerwiseError
from topology.model import load_model, model_names
from topology.profile import HardwareProfile, write_profile

SECTIONS = ("launch", "hbm", "l2", "gemm", "attention", "collectives", "serving-host")
GPU_MODELS = ("seed-dense-16", "small-1024")
CPU_MODELS = ("tiny-test",)
CPU_BUDGET_BYTES = 256 * 1024 * 1024  # rotation buffers on a CPU plumbing run
GPU_FREE_MEMORY_SHARE = 0.4  # rotation buffers may take this share of free GPU memory
Progress = Callable[[str], None]


@dataclass(frozen=True)
class CalibrationRequest:
    """What to measure and where to write it (the command line's options, as values)."""

    out: str = "profile.json"
    gpus: int | None = None  # default: all visible
    models: tuple[str, ...] = ()  # model presets whose weight shapes to measure (default: GPU_MODELS / CPU_MODELS)
    quick: bool = False
    device: str = "auto"  # auto, cuda or cpu
    only: str | None = None  # comma-separated sections
    skip: str = ""
    seed: int = 0
    command: str = "layerwise calibrate"


def _progress(message: str) -> None:
    print(f"[calibrate] {message}", file=sys.stderr, flush=True)


def _sections(args: CalibrationRequest) -> tuple[str, ...]:
    chosen = [s.strip() for s in (args.only or ",".join(SECTIONS)).split(",") if s.strip()]
    skipped = {s.strip() for s in args.skip.split(",") if s.strip()}
    for name in [*chosen, *skipped]:
        if name not in SECTIONS:
            raise LayerwiseError("--only/--skip", f"unknown section {name!r} (known: {', '.join(SECTIONS)})")
    return tuple(s for s in SECTIONS if s in chosen and s not in skipped)

def _device(args: CalibrationRequest) -> tuple[Device, int]:
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

def _grid(args: CalibrationRequest, device: Device) -> CalibrationGrid:
    names = tuple(args.models) if args.models else (GPU_MODELS if device.is_cuda else CPU_MODELS)
    for name in names:
        if name not in model_names():
            raise LayerwiseError("--model", f"unknown preset {name!r} (known: {', '.join(model_names())})")
    models = tuple(load_model(name) for name in names)
    return gpu_grid(models, args.quick) if device.is_cuda else cpu_grid(models, args.quick)

def _measure(name: str, device: Device, gpus: int, grid: CalibrationGrid, args: CalibrationRequest
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
    if name == "serving-host":
        return measure_serving_host(device, args.quick, args.seed, _progress)
    raise ValueError(f"unknown section {name!r}")

def calibrate(args: CalibrationRequest) -> HardwareProfile:
    """Measure every chosen section, rewriting ``args.out`` after each; the final profile."""
    device, gpus = _device(args)
    sections = _sections(args)
    grid = _grid(args, device)
    try:
        environment = collect_environment(device.torch_device.type, gpus)
    except Exception as exc:  # a missing tool must not stop the measurements
        environment = {"error": f"{type(exc).__name__}: {exc}", "torch": torch.__version__,
                       "gpu_name": torch.cuda.get_device_name(0) if device.is_cuda else "cpu"}
    environment["quick"] = bool(args.quick)
    environment["command"] = args.command
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

def plot(profile: HardwareProfile, profile_path: Path) -> Path | None:
    """PROFILE.png beside the profile, or None (and a line) without matplotlib."""
    try:
        return plot_profile(profile, profile_path.with_suffix(".png"))
    except ModuleNotFoundError as exc:  # matplotlib is optional (the 'report' extra)
        _progress(f"no plot: missing module {exc.name!r}")
        return None

