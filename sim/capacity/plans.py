"""The per-replica plans a capacity search considers (plans of g GPUs each, copied per replica).

For every GPU count g allowed:

* the uniform TP x PP family: every TP degree the model and a node allow, times ``g / tp`` stages
  over layers split as evenly as possible (:func:`sim.search.families.tp_pp_layouts`);
* the ``uneven`` best plans of at most g GPUs under the plan search's twin (:mod:`sim.search.dp`:
  uneven stages, a TP degree per stage, placements across nodes), scored as a serving iteration is
  run: one pass through every stage (one microbatch; a serving pipeline keeps as many iterations in
  flight as it has stages, so a plan's iteration time is the sum of its stages);
* the experiment's own plans (those that are points of the space).

A plan must fit HBM with the serving setup's sizing workload (one request at ``max_model_len``);
whether it leaves room for the KV cache is checked per scheduler setting (the activations of a token
budget come first). Plans are built for GPUs ``0 .. g-1``; every replica is a copy on its own GPUs,
which costs the same on a homogeneous cluster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from serving.setup import ServingSetup
from sim.capacity.space import ReplicaPlan, layout_label
from sim.costs.stage import PriceMemo
from sim.inputs import Basis
from sim.search.dp import Geometry, k_best_layouts, score_layout
from sim.search.families import tp_pp_layouts
from sim.search.tables import StageTable
from topology.errors import LayerwiseError
from topology.experiment import build_plan
from topology.partition.space import Layout, layout_of_plan, plan_of_layout, tp_choices
from topology.plan import Plan

TP_PP = "tp-pp family"
UNEVEN = "plan search (uneven)"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class PlanCandidates:
    """The plans found, and the layouts refused with why (e.g. weights beyond HBM)."""

    plans: tuple[ReplicaPlan, ...]
    refused: tuple[tuple[str, str], ...]  # (layout label, reason)


def _build(setup: ServingSetup, layout: Layout, origin: str) -> Plan:
    experiment = setup.experiment
    return plan_of_layout(layout, experiment.model, experiment.cluster, experiment.workload, "capacity",
                          notes=(f"capacity search: {origin}",))


def replica_plans(setup: ServingSetup, basis: Basis, max_gpus: int, gpu_counts: tuple[int, ...] | None,
                  uneven: int, progress: Progress | None = None) -> PlanCandidates:
    """Every candidate replica plan of at most ``max_gpus`` GPUs (and only ``gpu_counts``, if given)."""
    experiment = setup.experiment
    model, cluster, workload = experiment.model, experiment.cluster, experiment.workload
    limit = min(max_gpus, cluster.num_devices)
    allowed = (lambda g: g <= limit) if gpu_counts is None else (lambda g: g <= limit and g in gpu_counts)
    found: dict[Layout, ReplicaPlan] = {}
    refused: list[tuple[str, str]] = []
    for layout in tp_pp_layouts(model, cluster, workload, limit, microbatches=(1,)):
        if not allowed(layout.num_gpus):
            continue
        try:
            found[layout] = ReplicaPlan(layout_label(layout), layout, _build(setup, layout, TP_PP), TP_PP)
        except LayerwiseError as exc:
            refused.append((layout_label(layout), exc.message))
    if uneven > 0:
        for layout in _uneven_layouts(setup, basis, limit, allowed, uneven, progress):
            if layout not in found:
                found[layout] = ReplicaPlan(layout_label(layout), layout, _build(setup, layout, UNEVEN), UNEVEN)
    for name in experiment.plan_names:
        try:
            plan = build_plan(experiment, name)
            layout = layout_of_plan(plan, cluster)
        except LayerwiseError as exc:
            refused.append((f"experiment plan {name}", exc.message))
            continue
        layout = Layout(1, layout.layer_counts, layout.tp_degrees, layout.starts)
        if allowed(layout.num_gpus) and layout not in found:
            found[layout] = ReplicaPlan(layout_label(layout), layout, _build(setup, layout, f"experiment: {name}"),
                                        f"experiment: {name}")
    plans = sorted(found.values(), key=lambda p: (p.gpus, p.stages, p.label, p.layout.starts))
    return PlanCandidates(tuple(_unique_labels(plans)), tuple(refused))


def _unique_labels(plans: list[ReplicaPlan]) -> list[ReplicaPlan]:
    """Plans whose labels coincide (the same stages placed differently across nodes) get their first
    GPUs in the label: ``TP4xPP2 @0,8``."""
    counts: dict[str, int] = {}
    for plan in plans:
        counts[plan.label] = counts.get(plan.label, 0) + 1
    return [plan if counts[plan.label] == 1 else
            dataclasses.replace(plan, label=f"{plan.label} @{','.join(str(s) for s in plan.layout.starts)}")
            for plan in plans]


def _uneven_layouts(setup: ServingSetup, basis: Basis, limit: int, allowed: Callable[[int], bool], k: int,
                    progress: Progress | None) -> list[Layout]:
    """The twin's ``k`` best layouts of at most g GPUs, for each allowed g, scored as one pass (M = 1)."""
    experiment = setup.experiment
    model, cluster, workload = experiment.model, experiment.cluster, experiment.workload
    table = StageTable(model, cluster, workload, basis.cost, 1, PriceMemo())
    choices = tp_choices(model, cluster)
    seeds_all = [s for s in (score_layout(layout, table, cluster.gpus_per_node, "decode")
                             for layout in tp_pp_layouts(model, cluster, workload, limit, choices, (1,)))
                 if s is not None]
    layouts: list[Layout] = []
    for g in range(1, limit + 1):
        if not allowed(g):
            continue
        if progress is not None:
            progress(f"plans: the twin's {k} best plans on {g} GPU{'s' if g > 1 else ''}")
        geometry = Geometry(model.num_layers, cluster.gpus_per_node, g, choices, "decode")
        seeds = [s for s in seeds_all if s.layout.num_gpus <= g]
        layouts += [s.layout for s in k_best_layouts({1: table}, geometry, k, seeds) if s.layout.num_gpus == g]
    return layouts
