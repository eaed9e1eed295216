"""Kernels timed alone, by shape family, as extra measured points of a profile (``layerwise validate
--kernels``): the shape study's ``kernels/<shape>.json`` files (``benchmarks/device/shape_study.py``).

With ``--folds family`` a fold that holds a family out also drops that family's kernels from the
profile it fits and predicts with: a held-out family contributes nothing, neither runs nor kernels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from topology.datafile import load_json_file
from topology.errors import LayerwiseError, reading
from topology.profile import AttentionPoint, GemmPoint, HardwareProfile, ProfileParams


@dataclass(frozen=True)
class KernelSet:
    """Measured GEMM and attention points, each with the family of the shape that gave it."""

    gemm: tuple[tuple[str, GemmPoint], ...] = ()
    attention: tuple[tuple[str, AttentionPoint], ...] = ()

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f for f, _ in (*self.gemm, *self.attention)))

    def profile_with(self, base: HardwareProfile | None, gpu_name: str, without: str | None = None
                     ) -> HardwareProfile:
        """``base`` (or an empty profile of ``gpu_name``) with these points added, those of family
        ``without`` left out."""
        profile = base or HardwareProfile(gpu_name=gpu_name, gpu_count=1, params=ProfileParams())
        gemm = tuple(p for f, p in self.gemm if f != without)
        attention = tuple(p for f, p in self.attention if f != without)
        params = dataclasses.replace(profile.params, gemm_points=profile.params.gemm_points + gemm,
                                     attention_points=profile.params.attention_points + attention)
        return dataclasses.replace(profile, params=params)


def load_kernel_points(paths: list[str]) -> KernelSet:
    """Every ``*.json`` kernel file under ``paths`` (folders searched, files taken as given)."""
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files += sorted(path.rglob("*.json"))
        elif path.is_file():
            files.append(path)
        else:
            raise LayerwiseError("--kernels", f"no such file or folder: {item!r}")
    gemm: list[tuple[str, GemmPoint]] = []
    attention: list[tuple[str, AttentionPoint]] = []
    for file in files:
        raw = load_json_file(file, "--kernels")
        if not isinstance(raw, dict) or "gemm" not in raw or "attention" not in raw:
            raise LayerwiseError("--kernels", f"{str(file)!r} is not a kernel file (no 'gemm' and 'attention')")
        with reading(f"--kernels {file}"):
            family = str(raw.get("family") or raw.get("shape") or file.stem)
            gemm += [(family, GemmPoint(int(p["m"]), int(p["n"]), int(p["k"]), float(p["time_s"])))
                     for p in raw["gemm"]]
            attention += [(family, AttentionPoint(int(p["batch"]), int(p["heads"]), int(p["kv_heads"]),
                                                  int(p["head_dim"]), int(p["new_tokens"]), int(p["context_len"]),
                                                  float(p["time_s"]))) for p in raw["attention"]]
    if not gemm and not attention:
        raise LayerwiseError("--kernels", f"no kernel points under {', '.join(paths)}")
    return KernelSet(tuple(gemm), tuple(attention))
