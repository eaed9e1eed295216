"""The cost model's inputs in one frozen object: parameters, and the measured kernels as correction
tables (:mod:`sim.costs.measured`). :mod:`sim.costs.build` makes it from a cluster and a profile."""

from __future__ import annotations

from dataclasses import dataclass

from sim.costs.measured import NO_TABLE, KernelTable
from sim.params import SimParams
from topology.profile import CollectiveFit


@dataclass(frozen=True)
class CostModel:
    """Everything the pure cost functions read (besides the operator and its shape); truly frozen:
    what is worked out from it is remembered in a :class:`sim.costs.memo.PriceMemo`."""

    params: SimParams
    cuda_graphs: bool
    collectives: tuple[CollectiveFit, ...] = ()
    gemm_table: KernelTable = NO_TABLE
    decode_attention_table: KernelTable = NO_TABLE
    prefill_attention_table: KernelTable = NO_TABLE
    measured_dtype_bytes: int = 2  # the dtype the profile's kernels were timed in (bf16 on a GPU)

    @property
    def launch_overhead_s(self) -> float:
        return self.params.launch_overhead_s(self.cuda_graphs)

    def collective_fit(self, op: str, group_size: int) -> CollectiveFit | None:
        """A measured fit for exactly this op and group size, if the profile has one."""
        for fit in self.collectives:
            if fit.op == op and fit.group_size == group_size:
                return fit
        return None
