"""The cost model's inputs in one frozen object: parameters plus a profile's measured tables."""

from __future__ import annotations

from dataclasses import dataclass

from sim.params import SimParams, resolve_params
from topology.cluster import Cluster
from topology.profile import AttentionPoint, CollectiveFit, GemmPoint, HardwareProfile


@dataclass(frozen=True)
class CostModel:
    """Everything the pure cost functions read (besides the operator and its shape); truly frozen:
    what is worked out from it is remembered in a :class:`sim.costs.memo.PriceMemo`."""

    params: SimParams
    cuda_graphs: bool
    collectives: tuple[CollectiveFit, ...] = ()
    gemm_points: tuple[GemmPoint, ...] = ()
    attention_points: tuple[AttentionPoint, ...] = ()

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
