"""A fitted profile to ship with the package (``layerwise validate ... --ship-profile PATH``).

The shipped copy is the fitted profile (measured numbers, fitted ``sim_params``, held-out bands
by regime) without its ``raw`` measurements, which stay in the calibration profile under
``results/``. A shipped profile is loaded by name (``topology.profile.load_profile("h100-sxm")``
reads ``topology/data/profiles/h100-sxm.json``), so a path named for a GPU preset must hold a
profile of that GPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from topology.atomic_io import check_output_file
from topology.errors import LayerwiseError
from topology.hardware import gpu_names, load_gpu
from topology.profile import HardwareProfile, profile_gpu_model

OPTION = "--ship-profile"


def check_ship_path(path: str | Path, gpu_name: str) -> Path:
    """Check, before any fit, that ``path`` can be written and, when its name is a GPU preset's
    (``h100-sxm.json``), that the runs were measured on that GPU."""
    target = check_output_file(path, OPTION)
    preset = target.stem
    if target.suffix == ".json" and preset in gpu_names() and profile_gpu_model(gpu_name) != load_gpu(preset).name:
        raise LayerwiseError(OPTION, f"{str(path)!r} is named for GPU preset {preset!r} "
                                     f"({load_gpu(preset).name}), but the runs were measured on {gpu_name!r}")
    return target


def shipped_profile(fitted: HardwareProfile, fitted_path: str | Path, results: Sequence[str]) -> HardwareProfile:
    """``fitted`` without its raw measurements, saying where it came from."""
    origin = (f"{fitted_path} (layerwise validate on {', '.join(results)}; raw measurements left out)")
    return dataclasses.replace(fitted, raw={}, environment={**fitted.environment, "shipped_from": origin})
