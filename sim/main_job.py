"""``layerwise simulate`` with no arguments: the seed's 16 x H100 question, answered by simulation.

Both cluster variants (two 8-GPU NVLink nodes; one 16-GPU NVLink domain) x both models
(the seed's dense 16-layer model; its 1.875e9-parameter-per-layer variant) x the seed's
two plans (TP8xPP2 with 8 microbatches; layer-wise 16-way, one microbatch), plus layer-wise
with 16 microbatches (beyond the seed), run in parallel over local cores.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from dataclasses import dataclass

from sim.api import simulate_plan
from sim.table import Row, render_rows
from sim.verdict import verdict
from topology.errors import LayerwiseError
from topology.experiment import load_experiment
from topology.results import RunResult

EXPERIMENT = "seed-16xh100"
CLUSTERS = ("seed-16xh100", "seed-16xh100-nvl16")
MODELS = ("seed-dense-16", "seed-1p875b-16")
BASELINE, LAYERWISE = "baseline", "layer-wise"
EXTRA_PLAN = "layer-wise-mb16"
EXTRA_PLAN_SPEC = "{partitioner: cache-fit, capacity: l2, counts: weights, microbatches: 16}"


@dataclass(frozen=True)
class Case:
    model: str
    cluster: str
    plan_name: str
    extra_overrides: tuple[str, ...] = ()  # e.g. fewer iterations in tests

    @property
    def overrides(self) -> list[str]:
        extra = [f"plans.{EXTRA_PLAN}={EXTRA_PLAN_SPEC}"] if self.plan_name == EXTRA_PLAN else []
        return [f"model={self.model}", f"cluster={self.cluster}", *extra, *self.extra_overrides]


def main_cases(extra_overrides: tuple[str, ...] = ()) -> list[Case]:
    return [Case(m, c, p, extra_overrides)
            for m in MODELS for c in CLUSTERS for p in (BASELINE, LAYERWISE, EXTRA_PLAN)]


# Longest first, so the last worker to finish is not left alone with a long case.
EXPECTED_COST_ORDER = (EXTRA_PLAN, BASELINE, LAYERWISE)


def run_case(case: Case) -> tuple[Case, RunResult | None, str | None, float]:
    """Simulate one case; a plan that cannot exist (e.g. does not fit HBM) comes back as its error."""
    started = time.perf_counter()
    try:
        experiment = load_experiment(EXPERIMENT, case.overrides)
        result = simulate_plan(experiment, case.plan_name)
    except LayerwiseError as exc:
        return case, None, str(exc), time.perf_counter() - started
    return case, result, None, time.perf_counter() - started


def run_cases(cases: list[Case], jobs: int) -> list[tuple[Case, RunResult | None, str | None, float]]:
    """All cases, in parallel over ``jobs`` processes, progress on stderr, results in input order."""
    done: dict[Case, tuple[Case, RunResult | None, str | None, float]] = {}
    workers = max(1, min(jobs, len(cases)))
    if workers == 1:
        outcomes = map(run_case, cases)
        for outcome in outcomes:
            done[outcome[0]] = outcome
            _progress(len(done), len(cases), outcome)
    else:
        context = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
        ordered = sorted(cases, key=lambda c: EXPECTED_COST_ORDER.index(c.plan_name)
                         if c.plan_name in EXPECTED_COST_ORDER else len(EXPECTED_COST_ORDER))
        with context.Pool(workers) as pool:
            for outcome in pool.imap_unordered(run_case, ordered):
                done[outcome[0]] = outcome
                _progress(len(done), len(cases), outcome)
    return [done[case] for case in cases]


def _progress(count: int, total: int, outcome: tuple[Case, RunResult | None, str | None, float]) -> None:
    case, result, error, wall_s = outcome
    status = "does not run" if result is None else f"{result.metrics.tokens_per_s:,.0f} tokens/s"
    print(f"[{count}/{total}] {case.model} on {case.cluster}, {case.plan_name}: {status} ({wall_s:.2f} s)",
          file=sys.stderr, flush=True)
    del error


def plan_label(case: Case, result: RunResult | None) -> str:
    if result is None:
        return case.plan_name
    compact = result.metrics.extra["plan"].split(" ", 1)[1]  # "TP8xPP2 mb=8"
    if case.plan_name == EXTRA_PLAN:
        return f"layer-wise {compact} (beyond the seed)"
    return f"{case.plan_name} {compact}"


def main_rows(jobs: int | None = None, extra_overrides: tuple[str, ...] = ()) -> tuple[list[Row], dict[str, float]]:
    experiment = load_experiment(EXPERIMENT)
    claims = experiment.paper_claims_tokens_per_s
    outcomes = run_cases(main_cases(extra_overrides), jobs or os.cpu_count() or 1)
    rows = [Row(case.model, case.cluster, case.plan_name, plan_label(case, result), result,
                claims.get(case.plan_name) if case.model == experiment.model.name else None, error)
            for case, result, error, _ in outcomes]
    return rows, claims


def render_main(rows: list[Row], claims: dict[str, float]) -> str:
    header = (f"The seed's question: decode, batch 128, context 10000, {MODELS[0]} and {MODELS[1]}, "
              f"on {CLUSTERS[0]} (2 x 8 NVLink + 400G NICs) and {CLUSTERS[1]} (one 16-GPU NVLink domain). "
              "Paper claims are for the seed model; TPOT (real) is the time between a sequence's tokens, "
              "1/TPS is the paper's definition.")
    return "\n\n".join([header, render_rows(rows),
                        verdict(rows, MODELS[0], CLUSTERS[0], BASELINE, LAYERWISE, EXTRA_PLAN, claims)])
