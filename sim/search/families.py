"""The plan families compared at their best: restrictions of the search space (pure).

* ``tp-pp``: Megatron-style, every stage at one TP degree, layers split as evenly as possible
  (:func:`topology.partition.tp_pp.even_layer_split`), stages packed onto the devices in order;
  every TP degree, stage count and microbatch count;
* ``layer-wise``: one layer group per GPU (every stage at TP 1), contiguous groups of any sizes,
  every GPU count and microbatch count (the search restricted to TP 1);
* ``all``: the whole space.
"""

from __future__ import annotations

from topology.cluster import Cluster
from topology.model import ModelSpec
from topology.partition.space import Layout, microbatch_choices, next_starts, tp_choices
from topology.partition.tp_pp import even_layer_split
from topology.workload import Workload


def family_tp_choices(family: str, model: ModelSpec, cluster: Cluster) -> tuple[int, ...]:
    return (1,) if family == "layer-wise" else tp_choices(model, cluster)


def packed_starts(tp_degrees: tuple[int, ...], gpus_per_node: int, max_gpus: int) -> tuple[int, ...] | None:
    """Each stage right after the previous one, or at the next node when its group would not fit."""
    starts: list[int] = []
    end = 0
    for tp in tp_degrees:
        options = next_starts(end, tp, gpus_per_node, max_gpus) if starts else ((0,) if tp <= max_gpus else ())
        if not options:
            return None
        starts.append(options[0])
        end = options[0] + tp
    return tuple(starts)


def tp_pp_layouts(model: ModelSpec, cluster: Cluster, workload: Workload, max_gpus: int,
                  allowed_tp: tuple[int, ...] | None = None,
                  microbatches: tuple[int, ...] | None = None) -> list[Layout]:
    """Every uniform TP x PP plan (even split, packed) on at most ``max_gpus`` GPUs."""
    layouts = []
    for tp in allowed_tp if allowed_tp is not None else tp_choices(model, cluster):
        for pp in range(1, model.num_layers + 1):
            starts = packed_starts((tp,) * pp, cluster.gpus_per_node, max_gpus)
            if starts is None:
                break
            counts = tuple(stop - start for start, stop in even_layer_split(model.num_layers, pp))
            for m in microbatches if microbatches is not None else microbatch_choices(workload):
                layouts.append(Layout(m, counts, (tp,) * pp, starts))
    return layouts
