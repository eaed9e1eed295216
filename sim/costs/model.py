"""The cost model's inputs in one frozen object: parameters plus a profile's measured tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sim.params import SimParams, resolve_params
from topology.cluster import Cluster
from topology.profile import AttentionPoint, CollectiveFit, GemmPoint, HardwareProfile

if TYPE_CHECKING:
    from sim.costs.kernels import LogPoints


@dataclass(frozen=True)
class CostModel:
    """Everything the pure cost functions read (besides the operator and its shape)."""

    params: SimParams
    cuda_graphs: bool
    collectives: tuple[CollectiveFit, ...] = ()
    gemm_points: tuple[GemmPoint, ...] = ()
    attention_points: tuple[AttentionPoint, ...] = ()
    # Memo of measured-to-roofline scales by (op kind, dtype bytes, shape): a pure function of
    # the fields above, filled by sim.costs.kernels (every layer and context would redo it).
    measured_scales: dict[tuple[str, int, tuple[int, ...]], float] = field(
        default_factory=dict, compare=False, repr=False)
    # Memo of the measured shapes of one (op kind, dtype bytes), as log dimensions and measured / roofline.
    measured_points: dict[tuple[str, int], LogPoints] = field(
        default_factory=dict, compare=False, repr=False)

    @property
    def launch_overhead_s(self) -> float:
        return self.params.launch_overhead_s(self.cuda_graphs)

    def collective_fit(self, op: str, group_size: int) -> CollectiveFit | None:
        """A measured fit for exactly this op and group size, if the profile has one."""
        for fit in self.collectives:
            if fit.op == op and fit.group_size == group_size:
                return fit
        return None


def build_cost_model(cluster: Cluster, profile: HardwareProfile | None, cuda_graphs: bool) -> CostModel:
    params = resolve_params(cluster, profile)
    if profile is None:
        return CostModel(params=params, cuda_graphs=cuda_graphs)
    return CostModel(
        params=params,
        cuda_graphs=cuda_graphs,
        collectives=profile.params.collectives,
        gemm_points=profile.params.gemm_points,
        attention_points=profile.params.attention_points,
    )
