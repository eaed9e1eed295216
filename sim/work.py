"""How much work an event simulation is, estimated before it starts, and the limit above which it is refused.

A stage pass (one microbatch through one stage) is the simulation's unit: about 10^5 a second on one
core of the CI machine (benchmarks/bench_simulate.md: 1.56 million passes per iteration took minutes).
With a fixed context the exact steady state (sim/steady.py) stops replaying after a few periods, so at
most :data:`FIXED_CONTEXT_ITERATIONS` iterations are counted; a growing context replays every one. Each
microbatch in flight holds a token record, so memory grows with microbatches x stages.
"""

from __future__ import annotations

import os

from topology.errors import LayerwiseError
from topology.plan import Plan
from topology.workload import Workload

MAX_STAGE_PASSES = 10**8  # the default limit (--max-passes raises it): about a quarter hour on one core
PASSES_PER_S = 1e5  # the CI machine's rate, for the estimate shown
FIXED_CONTEXT_ITERATIONS = 20  # iterations a fixed-context run replays before the steady state skips
BYTES_PER_TOKEN = 4096  # a microbatch's record in flight (token, events, tallies), generously


def stage_passes(plan: Plan, workload: Workload) -> int:
    """Stage passes the event simulation of ``plan`` will run."""
    iterations = workload.iterations
    if not (workload.phase == "decode" and workload.context_growth == "grow"):
        iterations = min(iterations, FIXED_CONTEXT_ITERATIONS)
    return plan.microbatches * plan.num_stages * iterations


def available_memory_bytes() -> int | None:
    """Physical memory not in use now (Linux), or None where it cannot be read."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_event_work(plan: Plan, workload: Workload, max_passes: int = MAX_STAGE_PASSES) -> None:
    """Refuse, before anything is allocated, an event simulation past ``max_passes`` stage passes or one
    whose microbatches in flight need more memory than is free."""
    passes = stage_passes(plan, workload)
    if passes > max_passes:
        raise LayerwiseError(
            "plan.microbatches",
            f"the event simulation would run about {passes:.3g} stage passes ({plan.microbatches:,} microbatches x "
            f"{plan.num_stages} stages x iterations), about {passes / PASSES_PER_S / 60:,.0f} min; the limit is "
            f"{max_passes:.3g} (--max-passes raises it; --analytic gives the closed form at once)")
    needed = plan.microbatches * plan.num_stages * BYTES_PER_TOKEN
    free = available_memory_bytes()
    if free is not None and needed > free:
        raise LayerwiseError("plan.microbatches", f"{plan.microbatches:,} microbatches in flight need about "
                                                  f"{needed / 1e9:.3g} GB, more than the {free / 1e9:.3g} GB free")
