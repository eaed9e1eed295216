"""The golden snapshot of the simulator's numbers: every shipped experiment and plan, under the
datasheet and under the shipped profile of its GPU, by both estimators, as shipped and in four
variants (eager launches, a short and a long prefill, a growing context), so that every cost path is pinned.

``python tests/golden/regenerate.py`` writes ``simulated.json``; ``test_golden_numbers.py``
compares every number at 1e-12 relative. Regenerate only for a deliberate change of numbers,
and say why in the commit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sim.resolve import resolve_given
from sim.simulate import estimate, simulate
from topology.errors import LayerwiseError
from topology.experiment import experiment_names, load_experiment
from topology.hardware import gpu_names, load_gpu
from topology.profile import load_profile

RELATIVE = 1e-12
# Metadata that differs from run to run or machine to machine, left out of every comparison.
METADATA_KEYS = frozenset({"wall_s", "created_utc", "python", "simpy"})
VARIANTS: dict[str, tuple[str, ...]] = {
    "shipped": (),
    "eager": ("workload.cuda_graphs=false",),
    "prefill": ("workload.phase=prefill", "workload.prompt_len=256", "workload.warmup_iters=2",
                "workload.measured_iters=5"),
    "long-prefill": ("workload.phase=prefill", "workload.batch_size=8", "workload.prompt_len=4096",
                     "workload.warmup_iters=1", "workload.measured_iters=2"),
    "grow": ("workload.context_growth=grow", "workload.warmup_iters=3", "workload.measured_iters=20"),
}
PROFILES = ("datasheet", "shipped")
ESTIMATORS = ("events", "twin")


@dataclass(frozen=True)
class Case:
    experiment: str
    plan: str
    variant: str
    profile: str  # "datasheet" or "shipped"
    estimator: str

    @property
    def key(self) -> str:
        return f"{self.experiment}/{self.plan}/{self.variant}/{self.profile}/{self.estimator}"


def shipped_profile_name(gpu_model: str) -> str:
    """The shipped profile of a GPU data file's model name (every shipped cluster has one)."""
    for preset in gpu_names():
        if load_gpu(preset).name == gpu_model:
            return preset
    raise KeyError(gpu_model)


def cases() -> Iterator[Case]:
    for name in experiment_names(serving=False):
        for plan in load_experiment(name).plan_names:
            for variant in VARIANTS:
                for profile in PROFILES:
                    for estimator in ESTIMATORS:
                        yield Case(name, plan, variant, profile, estimator)


def numbers(case: Case) -> dict[str, Any]:
    """What the simulator says for a case: its numbers, or the one-line error it gives."""
    try:
        experiment = load_experiment(case.experiment, list(VARIANTS[case.variant]))
        profile = (load_profile(shipped_profile_name(experiment.cluster.gpu.name))
                   if case.profile == "shipped" else None)
        run = simulate if case.estimator == "events" else estimate
        result = run(resolve_given(experiment, case.plan, profile))
    except LayerwiseError as exc:
        return {"error": str(exc)}
    m = result.metrics
    details = m.simulation
    assert details is not None
    comm = details.communication
    return {
        "tokens_per_s": m.tokens_per_s, "step_time_s": m.step_time_s, "tpot_s": m.tpot_s, "ttft_s": m.ttft_s,
        "breakdown": {"stage": details.breakdown.stage, **details.breakdown.seconds()},
        "communication": {"collective_events": comm.collective_events_per_iteration,
                          "collective_bytes": comm.collective_bytes_sent_per_iteration,
                          "p2p_transfers": comm.p2p_transfers_per_iteration,
                          "loopbacks": comm.loopback_transfers_per_iteration,
                          "p2p_messages": comm.p2p_messages_per_iteration,
                          "bytes_sent_total": comm.bytes_sent_total},
        "stages": [[s.compute_s, s.communication_s, s.idle_s] for s in m.stages],
        "hit_fractions": [r.hit_fraction for r in details.residency],
    }


def command_outputs() -> dict[str, list[str]]:
    """The JSON outputs pinned beside the numbers: the main job, the seed's search, and each shipped
    experiment simulated (``OUT`` stands for the file the command writes)."""
    commands = {"main-job": ["--json", "OUT", "--jobs", "1"],
                "search-seed-16xh100": ["search", "seed-16xh100", "--json", "OUT", "--no-plot", "--jobs", "1"]}
    for name in experiment_names(serving=False):
        commands[f"simulate-{name}"] = ["simulate", name, "--json", "OUT"]
    return commands


def run_command(argv: list[str], out: str) -> Any:
    """Run one pinned command in this process; its JSON output, read back."""
    import contextlib
    import io
    import json

    from layerwise.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main([out if word == "OUT" else word for word in argv])
    assert code == 0, err.getvalue()
    with open(out, encoding="utf-8") as handle:
        return json.load(handle)


def differences(expected: Any, got: Any, where: str = "") -> list[str]:
    """Every place two snapshots differ beyond RELATIVE (numbers) or at all (anything else),
    metadata keys aside."""
    if isinstance(expected, dict) and isinstance(got, dict):
        out = [f"{where}.{k}: missing" for k in expected if k not in got and k not in METADATA_KEYS]
        out += [f"{where}.{k}: unexpected" for k in got if k not in expected and k not in METADATA_KEYS]
        for k in expected:
            if k in METADATA_KEYS:
                continue
            if k in got:
                out += differences(expected[k], got[k], f"{where}.{k}")
        return out
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return [f"{where}: {len(got)} items, expected {len(expected)}"]
        pairs = enumerate(zip(expected, got, strict=True))
        return [d for i, (a, b) in pairs for d in differences(a, b, f"{where}[{i}]")]
    both_numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (expected, got))
    if both_numbers and math.isclose(expected, got, rel_tol=RELATIVE, abs_tol=1e-300):
        return []
    return [] if expected == got else [f"{where}: {got!r}, expected {expected!r}"]
