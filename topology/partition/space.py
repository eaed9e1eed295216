"""The plan search space: every plan the executor can deploy on a cluster (pure; no costs).

A point of the space, a :class:`Layout`, is

* ``microbatches``: a divisor of the batch;
* pipeline stages over contiguous layer ranges, in layer order; their sizes may be uneven;
* a TP degree per stage: it divides the heads, the KV heads and the MLP width
  (:func:`topology.model.check_tp_degree`) and is at most a node's GPU count;
* where the stages sit: stage ``s`` holds devices ``[starts[s], starts[s] + tp[s])``, inside one
  node. A stage starts where the previous one ended when its group fits in the rest of that node;
  otherwise, or by choice, at the first GPU of the next node (:func:`next_starts`). So the space
  holds every pattern of stage boundaries that cross nodes. Stage 0 starts at device 0; every
  device used lies among the first ``max_gpus`` devices (whole nodes first).

In a homogeneous cluster, where every GPU has its own NVLink port and NIC, an idle GPU inside a
node changes no route and no cost, so gaps are placed only at a node's end: any other placement
of the same stages costs the same as one of these. The number of GPUs used is ``sum(tp)``.

Every plan that ``tp-pp``, ``cache-fit`` and the seed's layer-wise method produce is a point here
(:func:`layout_of_plan`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from topology.cluster import Cluster
from topology.errors import LayerwiseError
from topology.model import ModelSpec, tp_degree_problem
from topology.partition.assemble import StageSpec, assemble_plan
from topology.plan import Plan
from topology.workload import Workload


def tp_choices(model: ModelSpec, cluster: Cluster) -> tuple[int, ...]:
    """TP degrees a stage may take on this cluster: they divide the model and fit in a node."""
    return tuple(tp for tp in range(1, cluster.gpus_per_node + 1) if tp_degree_problem(model, tp) is None)


def microbatch_choices(workload: Workload) -> tuple[int, ...]:
    """Every divisor of the batch."""
    return tuple(m for m in range(1, workload.batch_size + 1) if workload.batch_size % m == 0)


def next_starts(end: int, tp: int, gpus_per_node: int, max_gpus: int) -> tuple[int, ...]:
    """Where a stage of ``tp`` GPUs may start once the previous stage ended before device ``end``.

    Right at ``end`` when the group fits in the rest of that node; at the next node's first GPU
    (when ``end`` is not one already), by choice or because the group does not fit.
    """
    options = []
    offset = end % gpus_per_node
    if offset + tp <= gpus_per_node:
        options.append(end)
    if offset:
        options.append(end - offset + gpus_per_node)
    return tuple(start for start in options if start + tp <= max_gpus)


def node_of_position(position: int, gpus_per_node: int) -> int:
    return position // gpus_per_node


@dataclass(frozen=True)
class Layout:
    """One point of the search space (see the module docstring)."""

    microbatches: int
    layer_counts: tuple[int, ...]  # layers of each stage, in order
    tp_degrees: tuple[int, ...]  # TP degree of each stage
    starts: tuple[int, ...]  # first device index of each stage

    @property
    def num_stages(self) -> int:
        return len(self.layer_counts)

    @property
    def num_gpus(self) -> int:
        return sum(self.tp_degrees)

    @property
    def layer_ranges(self) -> tuple[tuple[int, int], ...]:
        ranges, start = [], 0
        for count in self.layer_counts:
            ranges.append((start, start + count))
            start += count
        return tuple(ranges)

    def crossings(self, gpus_per_node: int) -> tuple[bool, ...]:
        """Whether each boundary ``s -> s + 1`` crosses nodes (the last entry: last -> first)."""
        nodes = [node_of_position(start, gpus_per_node) for start in self.starts]
        return tuple(nodes[s] != nodes[(s + 1) % len(nodes)] for s in range(len(nodes)))

    def describe(self) -> str:
        """Compact: ``TP4xPP4 mb=4`` (even stages), ``TP8xPP2 [7,9] mb=2`` (uneven), and with mixed TP
        ``TP8:6|TP4:5|TP4:5 mb=2`` (TP degree: layers, per stage)."""
        tps = set(self.tp_degrees)
        counts = ",".join(str(c) for c in self.layer_counts)
        if len(tps) == 1:
            even = max(self.layer_counts) - min(self.layer_counts) <= 1 and list(self.layer_counts) == sorted(
                self.layer_counts, reverse=True)  # tp-pp's even split: the first stages take the extra layer
            shape = f"TP{self.tp_degrees[0]}xPP{self.num_stages}" + ("" if even else f" [{counts}]")
        else:
            shape = "|".join(f"TP{t}:{c}" for t, c in zip(self.tp_degrees, self.layer_counts, strict=True))
        return f"{shape} mb={self.microbatches}"


def check_layout(layout: Layout, model: ModelSpec, cluster: Cluster, workload: Workload, max_gpus: int) -> None:
    """Raise unless the layout is a point of the space (the rules of the module docstring)."""
    if workload.batch_size % layout.microbatches:
        raise LayerwiseError("layout.microbatches",
                             f"{layout.microbatches} does not divide batch_size={workload.batch_size}")
    if sum(layout.layer_counts) != model.num_layers or min(layout.layer_counts) < 1:
        raise LayerwiseError("layout.layer_counts", f"{layout.layer_counts} do not cover {model.num_layers} layers")
    if not len(layout.layer_counts) == len(layout.tp_degrees) == len(layout.starts):
        raise LayerwiseError("layout", "layer_counts, tp_degrees and starts differ in length")
    allowed = tp_choices(model, cluster)
    g = cluster.gpus_per_node
    if layout.starts[0] != 0:
        raise LayerwiseError("layout.starts", f"stage 0 starts at {layout.starts[0]}, not 0")
    end = 0
    for index, (tp, start) in enumerate(zip(layout.tp_degrees, layout.starts, strict=True)):
        if tp not in allowed:
            raise LayerwiseError(f"layout.tp_degrees[{index}]", f"{tp} is not one of {allowed}")
        if index and start not in next_starts(end, tp, g, max_gpus):
            raise LayerwiseError(f"layout.starts[{index}]", f"{start} is not a placement after device {end}")
        if start + tp > max_gpus:
            raise LayerwiseError(f"layout.starts[{index}]", f"devices {start}..{start + tp - 1} exceed {max_gpus}")
        end = start + tp


def layout_of_plan(plan: Plan, cluster: Cluster) -> Layout:
    """The point of the space a plan is (its devices must be ``gpu{i}`` of the cluster)."""
    index = {device: i for i, device in enumerate(cluster.devices)}
    starts = []
    for stage in plan.stages:
        positions = [index[d] for d in stage.devices]
        if positions != list(range(positions[0], positions[0] + len(positions))):
            raise LayerwiseError(f"stages[{stage.index}].devices", "are not consecutive GPUs")
        starts.append(positions[0])
    return Layout(
        microbatches=plan.microbatches,
        layer_counts=tuple(s.num_layers for s in plan.stages),
        tp_degrees=tuple(s.tp_degree for s in plan.stages),
        starts=tuple(starts),
    )


def enumerate_layouts(model: ModelSpec, cluster: Cluster, workload: Workload, max_gpus: int | None = None,
                      allowed_tp: tuple[int, ...] | None = None) -> Iterator[Layout]:
    """Every point of the space, by brute force (for tests and tiny spaces; HBM fit not checked)."""
    budget = cluster.num_devices if max_gpus is None else max_gpus
    choices = tp_choices(model, cluster) if allowed_tp is None else allowed_tp
    g, layers = cluster.gpus_per_node, model.num_layers

    def extend(placed: int, end: int, stages: tuple[tuple[int, int, int], ...]) -> Iterator[tuple]:  # type: ignore[type-arg]
        if placed == layers:
            yield stages
            return
        for tp in choices:
            for start in (next_starts(end, tp, g, budget) if stages else ((0,) if tp <= budget else ())):
                for count in range(1, layers - placed + 1):
                    yield from extend(placed + count, start + tp, (*stages, (count, tp, start)))

    for microbatches in microbatch_choices(workload):
        for stages in extend(0, 0, ()):
            yield Layout(microbatches, tuple(s[0] for s in stages), tuple(s[1] for s in stages),
                         tuple(s[2] for s in stages))


def count_layouts(model: ModelSpec, cluster: Cluster, workload: Workload, max_gpus: int | None = None) -> int:
    """The size of the space (HBM fit not checked), counted without enumerating it."""
    budget = cluster.num_devices if max_gpus is None else max_gpus
    choices = tp_choices(model, cluster)
    g, layers = cluster.gpus_per_node, model.num_layers

    @cache
    def ways(placed: int, end: int) -> int:
        """Completions once ``placed`` layers sit on stages ending before device ``end``."""
        if placed == layers:
            return 1
        return sum(ways(placed + count, start + tp)
                   for tp in choices for start in next_starts(end, tp, g, budget)
                   for count in range(1, layers - placed + 1))

    first = sum(ways(count, tp) for tp in choices if tp <= budget for count in range(1, layers + 1))
    return first * len(microbatch_choices(workload))


def plan_of_layout(layout: Layout, model: ModelSpec, cluster: Cluster, workload: Workload, partitioner: str,
                   notes: tuple[str, ...] = ()) -> Plan:
    """The validated Plan a layout describes (schedule ``layer-wise`` when every stage is TP 1)."""
    specs = [StageSpec(start, stop, tp) for (start, stop), tp in zip(layout.layer_ranges, layout.tp_degrees,
                                                                       strict=True)]
    schedule = "layer-wise" if layout.num_stages > 1 and set(layout.tp_degrees) == {1} else "tp-pp"
    return assemble_plan(model, cluster, workload, specs, schedule=schedule, partitioner=partitioner,
                         microbatches=layout.microbatches, notes=notes, starts=list(layout.starts))
