"""``min-max-bytes``: the contiguous partition whose busiest stage moves the fewest bytes.

A proxy, not a speed: it ignores pipeline bubbles, the microbatch count and communication, so
its plan can be slow (on the seed's experiment it is the one-microbatch layer-wise pipeline).
The fastest plan is the ``optimal`` partitioner, the simulator's plan search (``sim/search``).

Dynamic programming over (layers placed, devices used): each stage takes a contiguous range
of layers and a TP degree ``t`` (dividing heads, KV heads and the MLP width, at most a node),
placed on the next ``t`` devices without crossing a node boundary. The objective is the
largest ``cost_fn(layer_start, layer_stop, tp)`` over stages; stages whose footprint exceeds
HBM are not allowed. Every tp-pp plan with ``tp`` dividing ``gpus_per_node`` and every
cache-fit plan lies in this search space, so the result is never worse than either under the
same cost. Ties go to fewer devices, then fewer stages.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from topology.cluster import Cluster
from topology.errors import LayerwiseError
from topology.footprint import stage_footprint
from topology.layer_graph import layer_summary
from topology.model import ModelSpec, tp_degree_problem
from topology.partition.assemble import StageSpec, assemble_plan
from topology.plan import Plan
from topology.workload import Workload

StageCost = Callable[[int, int, int], float]


def bytes_moved_cost(model: ModelSpec, workload: Workload, microbatches: int) -> StageCost:
    """Default cost: HBM bytes one device of the stage moves per iteration (all microbatches)."""
    shape = workload.token_shape(microbatches)

    @cache
    def per_layer(tp: int) -> float:
        summary = layer_summary(model, tp, shape)
        return float(summary.hbm_bytes * microbatches)

    def cost(layer_start: int, layer_stop: int, tp: int) -> float:
        return (layer_stop - layer_start) * per_layer(tp)

    return cost


def plan_cost(plan: Plan, cost_fn: StageCost) -> float:
    """The plan's objective: its slowest stage."""
    return max(cost_fn(s.layer_start, s.layer_stop, s.tp_degree) for s in plan.stages)


def tp_choices(model: ModelSpec, cluster: Cluster) -> list[int]:
    return [t for t in range(1, cluster.gpus_per_node + 1) if tp_degree_problem(model, t) is None]


MAX_DP_STEPS = 5 * 10**7  # dynamic-program steps min-max-bytes takes on (about a minute on one core)


def partition_min_max_bytes(
    model: ModelSpec,
    cluster: Cluster,
    workload: Workload,
    cost_fn: StageCost | None = None,
    max_devices: int | None = None,
    microbatches: int = 1,
    allowed_tp: list[int] | None = None,
) -> Plan:
    cost = cost_fn if cost_fn is not None else bytes_moved_cost(model, workload, microbatches)
    num_devices = cluster.num_devices if max_devices is None else max_devices
    if not 1 <= num_devices <= cluster.num_devices:
        raise LayerwiseError("max_devices", f"{num_devices} is not between 1 and {cluster.num_devices}")
    choices = tp_choices(model, cluster) if allowed_tp is None else allowed_tp
    group = cluster.gpus_per_node
    layers = model.num_layers
    _check_work(layers, num_devices, len(choices))
    hbm = cluster.gpu.hbm_capacity_bytes

    @cache
    def fits(num_layers: int, tp: int) -> bool:
        return stage_footprint(model, num_layers, tp, workload, microbatches).total_bytes <= hbm

    inf = float("inf")
    # best[i][d] = (objective, stages, devices) for the first i layers on the first d devices
    best: list[list[tuple[float, int] | None]] = [[None] * (num_devices + 1) for _ in range(layers + 1)]
    choice: dict[tuple[int, int], tuple[int, int]] = {}
    best[0][0] = (0.0, 0)
    for i in range(1, layers + 1):
        for d in range(1, num_devices + 1):
            candidate: tuple[float, int] | None = None
            for t in choices:
                prev_d = d - t
                if prev_d < 0 or (prev_d % group) + t > group:
                    continue
                for j in range(i):
                    prev = best[j][prev_d]
                    if prev is None or not fits(i - j, t):
                        continue
                    value = (max(prev[0], cost(j, i, t)), prev[1] + 1)
                    if candidate is None or value < candidate:
                        candidate = value
                        choice[(i, d)] = (j, t)
            best[i][d] = candidate
    finals: list[tuple[float, int, int]] = []
    for d in range(1, num_devices + 1):
        entry = best[layers][d]
        if entry is not None:
            finals.append((entry[0], d, entry[1]))
    if not finals:
        raise LayerwiseError("plan", f"no partition of {layers} layers fits in HBM on {num_devices} devices")
    objective, devices_used, _ = min(finals)
    if objective == inf:
        raise LayerwiseError("plan", "every partition has infinite cost")
    specs: list[StageSpec] = []
    i, d = layers, devices_used
    while i > 0:
        j, t = choice[(i, d)]
        specs.append(StageSpec(j, i, t))
        i, d = j, d - t
    specs.reverse()
    schedule = "layer-wise" if all(s.tp_degree == 1 for s in specs) else "tp-pp"
    return assemble_plan(
        model, cluster, workload, specs,
        schedule=schedule, partitioner="min-max-bytes", microbatches=microbatches,
        notes=(_objective_note(objective, cost_fn is None, len(specs), devices_used),),
    )


def _check_work(layers: int, num_devices: int, tp_choices_count: int) -> None:
    """Refuse, before it starts, a dynamic program past :data:`MAX_DP_STEPS` steps."""
    steps = layers * (layers + 1) // 2 * num_devices * tp_choices_count
    if steps > MAX_DP_STEPS:
        raise LayerwiseError("plan", f"min-max-bytes would take about {steps:.3g} steps ({layers:,} layers squared "
                                     f"x {num_devices} devices x {tp_choices_count} TP degrees), past its limit of "
                                     f"{MAX_DP_STEPS:.0e} (minutes of work); give fewer max_devices, or use "
                                     "`layerwise search`, which scales to such models")


def _objective_note(objective: float, bytes_cost: bool, stages: int, devices: int) -> str:
    """What the DP minimized, in its unit (bytes), or as a value of the caller's cost function."""
    if bytes_cost:
        return (f"min-max-bytes: the busiest stage moves {objective / 1e9:.3g} GB per iteration per device "
                f"({stages} stages on {devices} devices); a byte count, not a time")
    return f"min-max-bytes: the caller's stage cost peaks at {objective:.6g} ({stages} stages on {devices} devices)"
