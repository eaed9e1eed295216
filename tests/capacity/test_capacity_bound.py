"""The capacity bound: hand-worked lines, bound and unloaded latencies on a made-up floor; the closed-form
block sums against counting; and the floor's assumption (no mix of decodes and chunks of n tokens is
cheaper than the floor at n) on random iterations priced by the real cost model."""

from __future__ import annotations

import random

import numpy as np
import pytest

from serving.batch import DECODE, PREFILL, IterationPlan, PlanItem, graph_padding
from serving.setup import serving_setup_from_dict
from serving.slo import Slo, SloSpec
from sim.capacity.bound import (
    Line,
    RequestShapes,
    _block_token_sums,
    _hull_lines,
    kv_rejections,
    replica_bound,
    unloaded_latencies_s,
    unloaded_violation,
)
from sim.capacity.floor import floor_token_counts, measure_floor
from sim.inputs import resolve_basis
from sim.serving.run import iteration_pricer
from topology.experiment import build_plan

# a floor: 1 s for 1..3 tokens, 2 s for 4..7, 4 s at 8 (steps start at 1, 2, 4, 8; 1 and 2 share a value)
COUNTS, VALUES = (1, 2, 4, 8), (1.0, 1.0, 2.0, 4.0)
SHAPES = RequestShapes(np.array([6, 6]), np.array([3, 3]))


def test_the_lines_under_a_floor_by_hand() -> None:
    lines = _hull_lines(COUNTS, VALUES)
    # right ends 1, 3, 7, 8 with values 1, 1, 2, 4: the flat line, the line through 0 (slope 2/7, at
    # (7, 2)) and the hull edge from (3, 1) to (7, 2) (slope 1/4, intercept 1/4); the edge to (8, 4)
    # has a negative intercept
    assert Line(1.0, 0.0) in lines
    assert Line(0.0, pytest.approx(2 / 7)) in lines  # type: ignore[arg-type]
    assert Line(0.25, 0.25) in lines
    assert all(line.intercept_s >= 0 and line.slope_s_per_token >= 0 for line in lines)


def test_the_bound_of_one_replica_by_hand() -> None:
    # two requests of P = 6, O = 3; seqs 2, budget 8, 10 blocks of 4 tokens, one stage
    bound = replica_bound(COUNTS, VALUES, 1, 2, 8, 10, 4, SHAPES)
    # work: per request max over lines of a (O - 1) / min(2, 8) + b (P + O - 1) = max(1, 8 * 2/7, 0.25 + 2)
    assert bound.work_per_s == pytest.approx(1 / (16 / 7))
    # KV: f(1) = 1 s times ceil(7/4) + ceil(8/4) = 4 blocks: 10 / 4
    assert bound.kv_per_s == pytest.approx(2.5)
    # sequences: 2 / (O f(1)) = 2 / 3
    assert bound.seqs_per_s == pytest.approx(2 / 3)
    assert bound.rate_per_s == pytest.approx(0.4375) and bound.limited_by == "iteration work"
    two_stages = replica_bound(COUNTS, VALUES, 2, 2, 8, 10, 4, SHAPES)
    assert two_stages.work_per_s == pytest.approx(2 * bound.work_per_s)


def test_unloaded_latencies_by_hand() -> None:
    lower = unloaded_latencies_s(COUNTS, VALUES, 8, SHAPES)
    # TTFT: one chunk of 6 tokens: max(1, 6 * 2/7, 0.25 + 0.25 * 6) = 1.75; TPOT f(1) = 1; E2E 1.75 + 2
    assert lower["ttft"] == pytest.approx([1.75, 1.75])
    assert lower["tpot"] == pytest.approx([1.0, 1.0])
    assert lower["e2e"] == pytest.approx([3.75, 3.75])
    assert unloaded_violation(lower, SloSpec((Slo("ttft", "p99", 2.0),))) is None
    slo, at_least = unloaded_violation(lower, SloSpec((Slo("ttft", "p99", 2.0), Slo("e2e", "p50", 3.0))))  # type: ignore[misc]
    assert slo.metric == "e2e" and at_least == pytest.approx(3.75)
    # chunked into budgets of 4 tokens: two prefill iterations
    assert unloaded_latencies_s(COUNTS[:3], VALUES[:3], 4, SHAPES)["ttft"][0] >= 2.0


def test_block_sums_in_closed_form_equal_counting() -> None:
    rng = np.random.default_rng(1)
    prompts, outputs = rng.integers(1, 300, 200), rng.integers(1, 300, 200)
    for block in (1, 3, 16):
        counted = [sum(-(-(p + t) // block) for t in range(1, o)) for p, o in zip(prompts, outputs, strict=True)]
        assert _block_token_sums(RequestShapes(prompts, outputs), block).tolist() == counted


def test_kv_rejections_count_requests_beyond_the_pool() -> None:
    shapes = RequestShapes(np.array([10, 30, 31]), np.array([3, 3, 3]))  # KV of 12, 32, 33 tokens
    assert kv_rejections(shapes, num_blocks=2, block_tokens=16) == 1


SMALL = {"name": "floor-check", "model": "small-1024", "cluster": "h100x2",
         "workload": {"phase": "serve", "num_requests": 10, "arrivals": {"kind": "poisson", "rate_per_s": 1},
                      "prompt_tokens": {"kind": "fixed", "tokens": 100},
                      "output_tokens": {"kind": "fixed", "tokens": 10}},
         "scheduler": {"max_num_batched_tokens": 1024, "max_num_seqs": 64, "max_model_len_tokens": 2048},
         "plans": {"tp1": {"partitioner": "tp-pp", "tp": 1, "pp": 1},
                   "pp2": {"partitioner": "tp-pp", "tp": 1, "pp": 2}}}


@pytest.mark.parametrize("plan_name", ["tp1", "pp2"])
def test_no_random_iteration_is_cheaper_than_the_floor(plan_name: str) -> None:
    setup = serving_setup_from_dict(SMALL)
    plan = build_plan(setup.experiment, plan_name)
    price = iteration_pricer(resolve_basis(setup.experiment), plan)
    sizes = setup.scheduler.cuda_graph_sizes
    floor = measure_floor(price, floor_token_counts(1024), [sizes])
    counts, values = floor.step_values_s(1024, sizes)
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(1, 1024)
        decodes = rng.randint(0, min(n, 64))
        items = [PlanItem(i, DECODE, 1, rng.randint(2, 2000), True) for i in range(decodes)]
        left, request = n - decodes, 1000
        while left > 0:
            chunk = rng.randint(1, left)
            items.append(PlanItem(request, PREFILL, chunk, chunk + rng.randint(0, 1000), rng.random() < 0.5))
            left, request = left - chunk, request + 1
        padded = graph_padding(len(items), decodes == n, sizes)
        iteration = IterationPlan(0, 0.0, tuple(items), n if padded is None else padded, padded is not None)
        step = max(k for k, count in enumerate(counts) if count <= n)
        assert price(iteration) >= values[step] * (1 - 1e-12), (n, decodes)
