"""The K best layouts of the search space under the twin, by dynamic programming over stages (pure).

A plan's step is a function of two sums over its stages (:mod:`sim.costs.pipeline`): the cycle
``S = sum occ_s`` and the bottleneck ``X = max occ_s``, where a stage's occupancy is its pass plus
its blocking send (:mod:`sim.search.tables`). The step grows with both, so among partial plans
that reach the same state, one whose ``(S, X)`` is matched or beaten by ``K`` others can never be
among the ``K`` best: each of those others, completed the same way, ends at least as fast.

State after placing some stages: ``(layers placed, next device, TP of stage 0, TP of the stage to
place next)``. Choosing the next stage's TP one step early makes each stage's occupancy known when
it is placed: ``occ = pass(layers, tp) + send(tp, tp_next, crosses)``, and the last stage's send is
the decode loop back to stage 0 (nothing in prefill). Each state keeps the points ``(S, X)`` that
fewer than ``K`` others dominate (points equal to within 1e-12 are one point: the same stages in
another order). Partial plans that cannot beat the bound (a known K-th best, or a TPOT / TTFT
limit) are dropped early: the stages still to place hold the layers left on the GPUs left, each
within the bound, so ``S_final >= S + floor[layers left, GPUs left]`` (:func:`remaining_floor_s`).
The result is exact: the ``K`` best (distinct) layouts of the space under the twin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.costs import pipeline
from sim.search.tables import StageTable
from topology.partition.space import Layout, next_starts

EQUAL_REL = 1e-12  # (S, X) points this close are the same point (summation order)

Chain = tuple  # (layers, tp, start, parent Chain | None): the stages placed so far, last first


@dataclass(frozen=True)
class Scored:
    """A layout and its twin figures."""

    layout: Layout
    cycle_s: float  # S: sum of the stages' occupancies
    bottleneck_s: float  # X: the largest occupancy
    step_s: float
    ttft_s: float | None  # prefill only

    @property
    def sort_key(self) -> tuple[float, int, int]:
        return (self.step_s, self.layout.num_gpus, self.layout.num_stages)


@dataclass(frozen=True)
class Geometry:
    """What the DP needs of the model and cluster."""

    num_layers: int
    gpus_per_node: int
    max_gpus: int
    tp_choices: tuple[int, ...]
    phase: str  # "decode" (closed loop: the last stage sends back to stage 0) or "prefill"


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= EQUAL_REL * max(abs(a), abs(b))


def _insert(points: list[list], cycle_s: float, bottleneck_s: float, chain: Chain, k: int) -> None:  # type: ignore[type-arg]
    """Add ``(S, X)`` unless ``k`` points dominate it; drop points it makes dominated ``k`` times."""
    s_hi, x_hi = cycle_s * (1 + EQUAL_REL), bottleneck_s * (1 + EQUAL_REL)
    s_lo, x_lo = cycle_s * (1 - EQUAL_REL), bottleneck_s * (1 - EQUAL_REL)
    dominated_by = 0
    for other in points:
        if other[0] <= s_hi and other[1] <= x_hi:
            if other[0] >= s_lo and other[1] >= x_lo:
                return  # the same point (the same stages in another order)
            dominated_by += 1
            if dominated_by >= k:
                return
    keep = []
    for other in points:
        if cycle_s <= other[0] and bottleneck_s <= other[1]:
            other[3] += 1
            if other[3] >= k:
                continue
        keep.append(other)
    keep.append([cycle_s, bottleneck_s, chain, dominated_by])
    points[:] = keep


class Incumbents:
    """The ``k`` best distinct plans found so far (by step); their worst step bounds the search."""

    def __init__(self, k: int, limit_s: float = math.inf) -> None:
        self.k = k
        self.limit_s = limit_s  # a hard limit (the TPOT limit in decode)
        self._steps: list[tuple[float, float, float, int]] = []  # (step, S, X, microbatches), sorted

    def add(self, scored: Scored) -> None:
        if scored.step_s > self.bound_s:
            return
        for _step, cycle, neck, m in self._steps:
            if m == scored.layout.microbatches and _close(cycle, scored.cycle_s) and _close(neck, scored.bottleneck_s):
                return
        self._steps.append((scored.step_s, scored.cycle_s, scored.bottleneck_s, scored.layout.microbatches))
        self._steps.sort()
        del self._steps[self.k:]

    @property
    def bound_s(self) -> float:
        """No plan slower than this can be among the ``k`` best."""
        if len(self._steps) < self.k:
            return self.limit_s
        return min(self.limit_s, self._steps[-1][0])


def _layout(chain: Chain, microbatches: int) -> Layout:
    stages = []
    while chain is not None:
        layers, tp, start, chain = chain
        stages.append((layers, tp, start))
    stages.reverse()
    return Layout(microbatches, tuple(s[0] for s in stages), tuple(s[1] for s in stages),
                  tuple(s[2] for s in stages))


def layout_occupancies(layout: Layout, table: StageTable, gpus_per_node: int, phase: str) -> list[float] | None:
    """Each stage's occupancy under the twin (None when a stage does not fit HBM)."""
    crossings = layout.crossings(gpus_per_node)
    k = layout.num_stages
    occupancies = []
    for s in range(k):
        pass_s = table.pass_s(layout.layer_counts[s], layout.tp_degrees[s])
        if pass_s is None:
            return None
        if s < k - 1:
            send_s = table.send_s(layout.tp_degrees[s], layout.tp_degrees[s + 1], crossings[s])
        elif phase == "decode" and k > 1:
            send_s = table.send_s(layout.tp_degrees[s], layout.tp_degrees[0], crossings[s])
        else:
            send_s = 0.0
        occupancies.append(pass_s + send_s)
    return occupancies


def score_layout(layout: Layout, table: StageTable, gpus_per_node: int, phase: str) -> Scored | None:
    occupancies = layout_occupancies(layout, table, gpus_per_node, phase)
    if occupancies is None:
        return None
    return _scored(layout, sum(occupancies), max(occupancies), phase)


def _scored(layout: Layout, cycle_s: float, bottleneck_s: float, phase: str) -> Scored:
    m = layout.microbatches
    ttft_s = pipeline.prefill_ttft_s(cycle_s, bottleneck_s, m) if phase == "prefill" else None
    return Scored(layout, cycle_s, bottleneck_s, pipeline.step_s(phase, cycle_s, bottleneck_s, m), ttft_s)


def remaining_floor_s(table: StageTable, geometry: Geometry, stage_cap_s: float) -> np.ndarray:
    """``floor[r, d]``: the least sum of passes of stages that hold ``r`` layers on at most ``d`` GPUs,
    each pass at most ``stage_cap_s`` (sends and placement ignored: a lower bound; inf if impossible)."""
    layers_total, gpus = geometry.num_layers, geometry.max_gpus
    floor = np.full((layers_total + 1, gpus + 1), np.inf)
    floor[0, :] = 0.0
    options = []
    for tp in geometry.tp_choices:
        for layers in range(1, layers_total + 1):
            pass_s = table.pass_s(layers, tp)
            if pass_s is None or pass_s > stage_cap_s:
                break
            options.append((layers, tp, pass_s))
    for r in range(1, layers_total + 1):
        row = floor[r]
        for layers, tp, pass_s in options:
            if layers <= r and tp <= gpus:
                np.minimum(row[tp:], floor[r - layers, :gpus + 1 - tp] + pass_s, out=row[tp:])
    return floor


def best_layouts_at(table: StageTable, geometry: Geometry, incumbents: Incumbents, max_ttft_s: float = math.inf,
                    progress: Callable[[], None] | None = None) -> list[Scored]:
    """The layouts with ``table.microbatches`` microbatches that can be among the ``incumbents.k`` best
    (every one whose step is within the incumbents' bound and, in prefill, whose mean TTFT is at most
    ``max_ttft_s``), best first; each one found joins the incumbents."""
    return _StageDP(table, geometry, incumbents, max_ttft_s, progress).run()


States = dict[tuple[int, int, int], list[list]]  # type: ignore[type-arg]  # (next device, TP first, TP next) -> points


class _StageDP:
    """The dynamic program of :func:`best_layouts_at` for one microbatch count (see the module docstring)."""

    def __init__(self, table: StageTable, geometry: Geometry, incumbents: Incumbents, max_ttft_s: float,
                 progress: Callable[[], None] | None) -> None:
        self.table, self.geometry, self.incumbents = table, geometry, incumbents
        self.max_ttft_s, self.progress = max_ttft_s, progress
        self.m = table.microbatches
        self.decode = geometry.phase == "decode"
        # every step is at least M x its bottleneck (prefill: S + (M-1) X >= M X), so no stage of a
        # plan within the bound takes longer than bound / M
        self.floor = remaining_floor_s(table, geometry, incumbents.bound_s * (1 + EQUAL_REL) / self.m).tolist()
        self.finals: list[Scored] = []

    def run(self) -> list[Scored]:
        layers_total, geometry = self.geometry.num_layers, self.geometry
        if self.floor[layers_total][geometry.max_gpus] == math.inf:
            return []  # no plan fits HBM, or none can be within the bound
        by_layers: list[States] = [{} for _ in range(layers_total)]
        for tp in geometry.tp_choices:
            if tp <= geometry.max_gpus:
                by_layers[0][(0, tp, tp)] = [[0.0, 0.0, None, 0]]
        for placed in range(layers_total):
            for state, points in by_layers[placed].items():
                if self.progress is not None:
                    self.progress()
                self._expand(placed, state, points, by_layers)
            by_layers[placed] = {}  # done with this layer count: free its points
        bound = self.incumbents.bound_s * (1 + EQUAL_REL)
        return _k_best([f for f in self.finals if f.step_s <= bound], self.incumbents.k)

    def _hopeless(self, cycle_s: float, bottleneck_s: float, layers_left: int, gpus_left: int = 0) -> bool:
        bound_s, m = self.incumbents.bound_s * (1 + EQUAL_REL), self.m
        floor_s = cycle_s + self.floor[layers_left][gpus_left]
        if self.decode:
            return pipeline.decode_step_s(floor_s, bottleneck_s, m) > bound_s
        return (pipeline.prefill_step_s(floor_s, bottleneck_s, m) > bound_s
                or pipeline.prefill_ttft_s(floor_s, bottleneck_s, m) > self.max_ttft_s * (1 + EQUAL_REL))

    def _expand(self, placed: int, state: tuple[int, int, int], points: list[list], by_layers: list[States]) -> None:  # type: ignore[type-arg]
        """Place the next stage (TP ``state[2]`` at device ``state[0]``) with every layer count."""
        tp = state[2]
        layers_total = self.geometry.num_layers
        for layers in range(1, layers_total - placed + 1):
            pass_s = self.table.pass_s(layers, tp)
            if pass_s is None or (self.decode and self.m * pass_s > self.incumbents.bound_s * (1 + EQUAL_REL)):
                break  # more layers only take longer and hold more bytes
            if placed + layers == layers_total:
                self._finish(state, layers, pass_s, points)
            else:
                left = layers_total - placed - layers
                self._continue(state, layers, pass_s, points, by_layers[placed + layers], left)

    def _finish(self, state: tuple[int, int, int], layers: int, pass_s: float, points: list[list]) -> None:  # type: ignore[type-arg]
        """The last stage: in decode it sends back to stage 0 (unless it is stage 0)."""
        start, tp_first, tp = state
        crosses = start // self.geometry.gpus_per_node != 0
        send_s = self.table.send_s(tp, tp_first, crosses) if self.decode and start > 0 else 0.0
        occupancy = pass_s + send_s
        for cycle_s, bottleneck_s, chain, _ in points:
            cycle, neck = cycle_s + occupancy, max(bottleneck_s, occupancy)
            if not self._hopeless(cycle, neck, 0):
                final = _scored(_layout((layers, tp, start, chain), self.m), cycle, neck, self.geometry.phase)
                self.finals.append(final)
                self.incumbents.add(final)

    def _continue(self, state: tuple[int, int, int], layers: int, pass_s: float, points: list[list],  # type: ignore[type-arg]
                  successors: States, layers_left: int) -> None:
        """A stage that the next one follows: every TP degree and placement of that next stage."""
        start, tp_first, tp = state
        g, max_gpus = self.geometry.gpus_per_node, self.geometry.max_gpus
        for tp_next in self.geometry.tp_choices:
            for next_start in next_starts(start + tp, tp_next, g, max_gpus):
                occupancy = pass_s + self.table.send_s(tp, tp_next, start // g != next_start // g)
                key = (next_start, tp_first, tp_next)
                for cycle_s, bottleneck_s, chain, _ in points:
                    cycle, neck = cycle_s + occupancy, max(bottleneck_s, occupancy)
                    if not self._hopeless(cycle, neck, layers_left, max_gpus - next_start):
                        _insert(successors.setdefault(key, []), cycle, neck, (layers, tp, start, chain),
                                self.incumbents.k)


def _k_best(scored: list[Scored], k: int) -> list[Scored]:
    """The ``k`` best, one per distinct (microbatches, S, X) point."""
    ranked: list[Scored] = []
    for item in sorted(scored, key=lambda s: s.sort_key):
        if any(r.layout.microbatches == item.layout.microbatches and _close(r.cycle_s, item.cycle_s)
               and _close(r.bottleneck_s, item.bottleneck_s) for r in ranked):
            continue
        ranked.append(item)
        if len(ranked) == k:
            break
    return ranked


def merge_best(groups: list[list[Scored]], k: int) -> list[Scored]:
    return _k_best([s for group in groups for s in group], k)


SLACK_SCHEDULE = (0.01, 0.04, 0.16, 0.64, math.inf)  # how far past the best known plan the DP looks


def k_best_layouts(tables: dict[int, StageTable], geometry: Geometry, k: int, seeds: list[Scored],
                   limit_s: float = math.inf, max_ttft_s: float = math.inf,
                   progress: Callable[[], None] | None = None) -> list[Scored]:
    """The ``k`` best distinct layouts over every microbatch count, under the twin, best first.

    ``seeds`` are plans already scored (e.g. the uniform TP x PP family). The DP first looks only
    at plans within 1% of the best seed, then within 4%, 16%, 64% and without a bound, until it
    has ``k`` plans: a bound that prunes more makes each pass cheaper, and any pass that finds
    ``k`` plans under its bound has found the ``k`` best.
    """
    eligible = [s for s in seeds if s.step_s <= limit_s and (s.ttft_s is None or s.ttft_s <= max_ttft_s)]
    best_known = min((s.step_s for s in eligible), default=math.inf)
    order = sorted(tables, key=lambda m: min((s.step_s for s in eligible if s.layout.microbatches == m),
                                             default=math.inf))
    result: list[Scored] = []
    for slack in SLACK_SCHEDULE:
        incumbents = Incumbents(k, limit_s=min(limit_s, best_known * (1 + slack)))
        for seed in eligible:
            incumbents.add(seed)
        groups = [best_layouts_at(tables[m], geometry, incumbents, max_ttft_s, progress) for m in order]
        result = merge_best([*groups, [s for s in eligible if s.step_s <= incumbents.bound_s]], k)
        if len(result) >= k or incumbents.limit_s >= limit_s:
            return result
    return result
