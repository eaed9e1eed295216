"""What the search adds up: the twin's time for every stage choice at one microbatch count (pure).

``pass_s[(layers, tp)]``: one microbatch's pass through a stage of ``layers`` layers at TP ``tp``
(kernels and all-reduces, per device: :func:`sim.costs.stage.stage_pass`), present only when the
stage fits HBM. ``send_s[(tp_src, tp_dst, crosses)]``: how long a stage is blocked sending its
activation to the next stage, whose group lies in the same node or, when ``crosses``, in another
(:func:`sim.costs.transfers.boundary_time_s`). A growing context averages the two passes around the
measured iterations' mean context, as the twin does. Layers are identical, so a stage's cost
depends on its layer count and TP degree, and a boundary's on the two TP degrees and whether it
crosses nodes: the same numbers :func:`sim.analytic.analytic_metrics` computes for a whole plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.analytic import analytic_shapes
from sim.costs.model import CostModel
from sim.costs.stage import PriceMemo, stage_pass
from sim.costs.transfers import boundary_time_s, boundary_transfers
from topology.cluster import Cluster
from topology.footprint import stage_footprint
from topology.model import ModelSpec
from topology.plan import Stage
from topology.workload import Workload


@dataclass
class StageTable:
    """Twin costs at one microbatch count, filled on demand (a memo: pure functions of the inputs)."""

    model: ModelSpec
    cluster: Cluster
    workload: Workload
    cost: CostModel
    microbatches: int
    priced: PriceMemo = field(default_factory=PriceMemo)  # share one between tables of one cost model
    _pass_s: dict[tuple[int, int], float | None] = field(default_factory=dict)
    _send_s: dict[tuple[int, int, bool], float] = field(default_factory=dict)

    def stage(self, layers: int, tp: int, start: int = 0) -> Stage:
        """A stage of ``layers`` layers on devices ``start .. start + tp - 1`` (its footprint included)."""
        devices = self.cluster.devices[start:start + tp]
        footprint = stage_footprint(self.model, layers, tp, self.workload, self.microbatches)
        return Stage(index=0, layer_start=0, layer_stop=layers, devices=devices, tp_degree=tp, footprint=footprint)

    def pass_s(self, layers: int, tp: int) -> float | None:
        """Kernels + all-reduces of one microbatch pass; None when the stage does not fit HBM."""
        key = (layers, tp)
        if key not in self._pass_s:
            stage = self.stage(layers, tp)
            if stage.footprint.total_bytes > self.cluster.gpu.hbm_capacity_bytes:
                self._pass_s[key] = None
            else:
                passes = [stage_pass(self.model, stage, shape, self.cluster, self.cost, priced=self.priced,
                                     named=False)
                          for shape in analytic_shapes(self.workload, self.microbatches)]
                self._pass_s[key] = sum(p.duration_s for p in passes) / len(passes)
        return self._pass_s[key]

    def send_s(self, tp_src: int, tp_dst: int, crosses: bool) -> float:
        """Blocking send of one activation from a TP ``tp_src`` stage to a TP ``tp_dst`` stage."""
        key = (tp_src, tp_dst, crosses)
        if key not in self._send_s:
            g = self.cluster.gpus_per_node
            src = self.stage(1, tp_src, 0)
            dst = self.stage(1, tp_dst, g if crosses else tp_src)
            shape = self.workload.token_shape(self.microbatches)
            nbytes = shape.tokens * self.model.hidden_size * self.model.dtype_bytes
            self._send_s[key] = boundary_time_s(boundary_transfers(src, dst, nbytes, self.cluster, self.cost))
        return self._send_s[key]
