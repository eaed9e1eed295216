"""The seed's question: baseline TP x PP against the layer-wise pipeline.

At the measured scale the answer comes from the measurements (and the breakdown explains
it); at the seed's 16 x H100 scale it is an extrapolation of the calibrated simulator,
always shown with the simulator's held-out error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from topology.accuracy import plan_components, regime_of
from topology.errors import LayerwiseError
from topology.experiment import Experiment, build_plan, experiment_names, load_experiment
from topology.plan import Plan
from topology.profile import HardwareProfile, ProfileParams
from validate.crossval import Outcome
from validate.prediction import Prediction

SEED_EXPERIMENT = "seed-16xh100"
SEED_CLUSTERS = ("seed-16xh100", "seed-16xh100-nvl16")
# Fitted parameters that describe the software stack (fractions of a peak, per-kernel and
# per-message costs) carry over to another GPU; absolute rates and capacities do not.
TRANSFERABLE_SUFFIXES = ("_efficiency", "launch_overhead_graph_s", "launch_overhead_eager_s", "_latency_s")

SimulateFn = Callable[[Experiment, str, Plan | None, HardwareProfile | None, str | None], Prediction]


@dataclass(frozen=True)
class PlanComparison:
    """Two or more measured plans of one group, with their breakdowns."""

    group: str
    outcomes: tuple[Outcome, ...]  # fastest measured first


@dataclass(frozen=True)
class SeedPrediction:
    cluster_name: str
    plan_name: str
    plan_description: str
    devices: int
    tokens_per_s: float
    step_time_s: float
    breakdown_s: dict[str, float]
    uncalibrated_tokens_per_s: float
    claimed_tokens_per_s: float | None
    regime: str  # the prediction's regime (topology.accuracy.regime_of)
    components: tuple[str, ...]  # what the plan's step time depends on (topology.accuracy.plan_components)
    gpu_name: str  # the GPU predicted (its data file's name)


@dataclass(frozen=True)
class SeedExtrapolation:
    predictions: tuple[SeedPrediction, ...]
    profile_note: str  # how the fitted profile was carried over to the seed's GPU


def measured_comparisons(outcomes: tuple[Outcome, ...]) -> tuple[PlanComparison, ...]:
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(o.measurement.group_key, []).append(o)
    return tuple(
        PlanComparison(group=g, outcomes=tuple(sorted(members, key=lambda o: o.measured_step_time_s)))
        for g, members in sorted(groups.items())
        if len(members) >= 2
    )


def explain_difference(winner: Outcome, loser: Outcome) -> str:
    """Which simulated cause accounts for most of the step-time gap between two plans."""
    longer = loser.measured_step_time_s / winner.measured_step_time_s - 1.0
    text = (f"On hardware `{winner.measurement.key}` ({winner.measurement.plan.describe()}) has the shortest step; "
            f"`{loser.measurement.key}` ({loser.measurement.plan.describe()}) takes {100 * longer:.1f}% longer")
    a, b = winner.final.breakdown_s, loser.final.breakdown_s
    causes = sorted(set(a) | set(b), key=lambda k: abs(b.get(k, 0.0) - a.get(k, 0.0)), reverse=True)
    if not causes:
        return text + "; the simulator gave no breakdown."
    top = causes[0]
    delta_s = b.get(top, 0.0) - a.get(top, 0.0)
    return (text + f"; in the fitted simulator the largest difference is **{top}**: "
            f"{1e6 * b.get(top, 0.0):.1f} us vs {1e6 * a.get(top, 0.0):.1f} us per step "
            f"({'+' if delta_s >= 0 else ''}{1e6 * delta_s:.1f} us).")


def unmeasured_experiments(measured_devices: int) -> list[str]:
    """The seed's shipped experiments that need more GPUs than any measured run used."""
    missing = []
    for name in experiment_names():
        experiment = load_experiment(name)
        if name.startswith("seed") and experiment.cluster.num_devices > measured_devices:
            plans = ", ".join(experiment.plan_names)
            missing.append(f"`{name}` ({experiment.cluster.num_devices} x {experiment.cluster.gpu.name}: {plans})")
    return missing


def transfer_profile(fitted: HardwareProfile, measured_gpu_name: str,
                     target_gpu_name: str) -> tuple[HardwareProfile, str]:
    """The fitted profile for the target GPU: whole if it is the GPU measured (names as in the
    GPU data files), otherwise only the fitted parameters that describe the software stack
    (see :data:`TRANSFERABLE_SUFFIXES`) over the target's datasheet."""
    if measured_gpu_name == target_gpu_name:
        return fitted, f"the fitted profile applies as is (measured on {measured_gpu_name})"
    kept = {k: v for k, v in fitted.params.sim_params.items() if k.endswith(TRANSFERABLE_SUFFIXES)}
    dropped = sorted(set(fitted.params.sim_params) - set(kept))
    profile = HardwareProfile(gpu_name=target_gpu_name, gpu_count=1, params=ProfileParams(sim_params=kept),
                              source="validate-fit",
                              environment={"transferred_from": measured_gpu_name})
    note = (f"measured on {measured_gpu_name}, extrapolated to {target_gpu_name}: the {target_gpu_name} "
            f"datasheet plus the fitted {', '.join(sorted(kept)) or '(none)'}"
            + (f" (not carried over: {', '.join(dropped)})" if dropped else ""))
    return profile, note


def extrapolate_seed(fitted: HardwareProfile, uncalibrated: HardwareProfile | None, measured_gpu_name: str,
                     simulate_fn: SimulateFn) -> SeedExtrapolation:
    """Simulate the seed's 16 x H100 experiment, both cluster variants, both plans."""
    predictions = []
    note = ""
    for cluster_name in SEED_CLUSTERS:
        experiment = load_experiment(SEED_EXPERIMENT, [f"cluster={cluster_name}"])
        target = experiment.cluster.gpu.name
        profile, note = transfer_profile(fitted, measured_gpu_name, target)
        reference = uncalibrated if measured_gpu_name == target else None
        for plan_name in experiment.plan_names:
            try:
                plan = build_plan(experiment, plan_name)
            except LayerwiseError:
                continue
            predicted = simulate_fn(experiment, plan_name, plan, profile, None)
            baseline = simulate_fn(experiment, plan_name, plan, reference, None)
            predictions.append(
                SeedPrediction(
                    cluster_name=cluster_name,
                    plan_name=plan_name,
                    plan_description=plan.describe(),
                    devices=plan.num_devices,
                    tokens_per_s=predicted.tokens_per_s,
                    step_time_s=predicted.step_time_s,
                    breakdown_s=dict(predicted.breakdown_s),
                    uncalibrated_tokens_per_s=baseline.tokens_per_s,
                    claimed_tokens_per_s=experiment.paper_claims_tokens_per_s.get(plan_name),
                    regime=regime_of(experiment.workload.phase, experiment.workload.cuda_graphs),
                    components=plan_components(plan, experiment.cluster,
                                               loops_back=experiment.workload.phase == "decode"),
                    gpu_name=target,
                )
            )
    return SeedExtrapolation(predictions=tuple(predictions), profile_note=note)

