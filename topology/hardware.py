"""GPU and link specifications, loaded from sourced data files (SI units inside)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from topology.datafile import (
    DATA_PACKAGE,
    load_preset,
    parse_yaml,
    preset_names,
    sourced_value,
)
from topology.errors import LayerwiseError


@dataclass(frozen=True)
class GPUSpec:
    """One GPU model. All numbers SI: bytes, seconds, FLOP/s, bytes/s."""

    name: str
    dense_bf16_flops_per_s: float  # dense tensor-core BF16/FP16 peak
    hbm_capacity_bytes: int
    hbm_bw_bytes_per_s: float
    l2_capacity_bytes: int
    l2_usable_fraction: float  # share of L2 a resident working set can hold
    l2_bw_bytes_per_s: float  # read bandwidth of data hot in L2
    sm_count: int
    smem_per_sm_bytes: int  # shared memory (SRAM) per SM
    register_file_per_sm_bytes: int
    launch_overhead_eager_s: float  # host cost of one eager kernel launch
    launch_overhead_graph_s: float  # per-kernel cost inside a CUDA-graph replay

    def __post_init__(self) -> None:
        for field_name in (
            "dense_bf16_flops_per_s",
            "hbm_capacity_bytes",
            "hbm_bw_bytes_per_s",
            "l2_capacity_bytes",
            "l2_bw_bytes_per_s",
            "sm_count",
            "smem_per_sm_bytes",
        ):
            value = getattr(self, field_name)
            if value <= 0:
                raise LayerwiseError(f"gpu.{field_name}", f"must be > 0, got {value}")
        if not 0.0 < self.l2_usable_fraction <= 1.0:
            raise LayerwiseError(
                "gpu.l2_usable_fraction", f"must be in (0, 1], got {self.l2_usable_fraction}"
            )
        for field_name in ("launch_overhead_eager_s", "launch_overhead_graph_s"):
            if getattr(self, field_name) < 0:
                raise LayerwiseError(f"gpu.{field_name}", "must be >= 0")

    @property
    def l2_usable_bytes(self) -> int:
        return int(self.l2_capacity_bytes * self.l2_usable_fraction)

    @property
    def sram_bytes(self) -> int:
        """All shared memory of the chip (SMs x shared memory per SM)."""
        return self.sm_count * self.smem_per_sm_bytes


@dataclass(frozen=True)
class LinkSpec:
    """One kind of link. Bandwidth is per direction; latency is per message."""

    name: str
    bw_bytes_per_s_per_direction: float
    latency_s: float

    def __post_init__(self) -> None:
        if self.bw_bytes_per_s_per_direction <= 0:
            raise LayerwiseError(
                f"link.{self.name}.bw_bytes_per_s_per_direction",
                f"must be > 0, got {self.bw_bytes_per_s_per_direction}",
            )
        if self.latency_s < 0:
            raise LayerwiseError(f"link.{self.name}.latency_s", f"must be >= 0, got {self.latency_s}")


_GPU_INT_FIELDS = (
    "hbm_capacity_bytes",
    "l2_capacity_bytes",
    "sm_count",
    "smem_per_sm_bytes",
    "register_file_per_sm_bytes",
)
_GPU_FLOAT_FIELDS = (
    "dense_bf16_flops_per_s",
    "hbm_bw_bytes_per_s",
    "l2_usable_fraction",
    "l2_bw_bytes_per_s",
    "launch_overhead_eager_s",
    "launch_overhead_graph_s",
)


def gpu_names() -> list[str]:
    return preset_names("gpus")


@cache
def load_gpu(name: str) -> GPUSpec:
    """Load a GPU preset by file name (``h100-sxm``, ``h200-sxm``)."""
    raw = load_preset("gpus", name)
    origin = f"gpus/{name}"
    values: dict[str, float | int | str] = {"name": str(raw.get("name", name))}
    for key in _GPU_INT_FIELDS:
        values[key] = int(sourced_value(raw, key, origin))
    for key in _GPU_FLOAT_FIELDS:
        values[key] = sourced_value(raw, key, origin)
    return GPUSpec(**values)  # type: ignore[arg-type]


def gpu_preset_for_device(device_name: str) -> str | None:
    """The GPU preset whose ``device_name_contains`` appears in a device's reported name
    (``torch.cuda.get_device_name``), or None when no preset matches."""
    for name in gpu_names():
        needle = str(load_preset("gpus", name).get("device_name_contains", "")).strip()
        if needle and needle in device_name:
            return name
    return None


@cache
def load_links() -> dict[str, LinkSpec]:
    """All link kinds from ``topology/data/links.yaml``."""
    text = resources.files(DATA_PACKAGE).joinpath("links.yaml").read_text(encoding="utf-8")
    raw = parse_yaml(text, "links.yaml")
    links = {}
    for name, entry in raw.items():
        origin = f"links.{name}"
        links[name] = LinkSpec(
            name=name,
            bw_bytes_per_s_per_direction=sourced_value(entry, "bw_bytes_per_s_per_direction", origin),
            latency_s=sourced_value(entry, "latency_s", origin),
        )
    return links


def load_link(name: str) -> LinkSpec:
    links = load_links()
    if name not in links:
        raise LayerwiseError("link", f"unknown link kind {name!r} (known: {', '.join(sorted(links))})")
    return links[name]
