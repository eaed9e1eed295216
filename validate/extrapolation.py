"""Experiments larger than any measured run, predicted by the calibrated simulator.

At the measured scale the answer comes from the measurements (:mod:`validate.comparisons`);
beyond it, each experiment is simulated with the fitted profile and always shown with the held-out
error of its own regime. Which experiments: by default every shipped experiment that needs more
GPUs than any measured run used, in a number format the runs used;
``layerwise validate --extrapolate NAME[@CLUSTER]`` names others.
Claims an experiment file states (``paper_claims_tokens_per_s``) are carried beside the predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from topology.accuracy import plan_components, regime_of
from topology.errors import LayerwiseError
from topology.experiment import Experiment, build_plan, experiment_names, load_experiment
from topology.plan import Plan
from topology.profile import HardwareProfile, ProfileParams
from validate.prediction import Prediction

# Fitted parameters that describe the software stack (fractions of a peak, per-kernel and
# per-message costs) carry over to another GPU; absolute rates and capacities do not.
TRANSFERABLE_SUFFIXES = ("_efficiency", "launch_overhead_graph_s", "launch_overhead_eager_s", "_latency_s")
TARGET_SEPARATOR = "@"  # NAME@CLUSTER: the experiment on another cluster preset

SimulateFn = Callable[[Experiment, str, Plan | None, HardwareProfile | None, str | None], Prediction]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExtrapolatedPrediction:
    experiment_name: str
    cluster_name: str
    plan_name: str
    plan_description: str
    devices: int
    tokens_per_s: float
    step_time_s: float
    breakdown_s: dict[str, float]
    uncalibrated_tokens_per_s: float
    claimed_tokens_per_s: float | None  # the experiment file's claim for this plan, if it states one
    regime: str  # the prediction's regime (topology.accuracy.regime_of)
    components: tuple[str, ...]  # what the plan's step time depends on (topology.accuracy.plan_components)
    gpu_name: str  # the GPU predicted (its data file's name)
    profile_note: str  # how the fitted profile was carried over to this GPU


@dataclass(frozen=True)
class Extrapolation:
    predictions: tuple[ExtrapolatedPrediction, ...]
    skipped: tuple[str, ...] = ()  # "experiment: plan: why" for plans that could not be built


def unmeasured_experiments(measured_devices: int, measured_dtype_bytes: set[int]) -> list[str]:
    """The shipped experiments that need more GPUs than any measured run used, in a number format
    some measured run used (a model in another format, e.g. the float32 CPU test model, would
    rest on kernels no run measured)."""
    names = []
    for name in experiment_names(serving=False):
        experiment = load_experiment(name)
        if experiment.cluster.num_devices > measured_devices and experiment.model.dtype_bytes in measured_dtype_bytes:
            names.append(name)
    return names


def describe_experiment(name: str) -> str:
    experiment = load_experiment(name)
    plans = ", ".join(experiment.plan_names)
    return f"`{name}` ({experiment.cluster.num_devices} x {experiment.cluster.gpu.name}: {plans})"


def load_target(target: str) -> Experiment:
    """``NAME`` or ``NAME@CLUSTER``: a shipped experiment (or experiment file), optionally on another cluster."""
    name, _, cluster = target.partition(TARGET_SEPARATOR)
    return load_experiment(name, [f"cluster={cluster}"] if cluster else [])


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


def extrapolate(targets: Sequence[str], fitted: HardwareProfile, uncalibrated: HardwareProfile | None,
                measured_gpu_name: str, simulate_fn: SimulateFn, progress: Progress | None = None) -> Extrapolation:
    """Simulate every plan of every target experiment with the fitted profile (carried over to
    the target's GPU) and without it."""
    predictions: list[ExtrapolatedPrediction] = []
    skipped: list[str] = []
    for target in targets:
        experiment = load_target(target)
        gpu = experiment.cluster.gpu.name
        profile, note = transfer_profile(fitted, measured_gpu_name, gpu)
        reference = uncalibrated if measured_gpu_name == gpu else None
        for plan_name in experiment.plan_names:
            if progress is not None:
                progress(f"extrapolating {experiment.name} on {experiment.cluster.name}: {plan_name}")
            try:
                plan = build_plan(experiment, plan_name)
            except LayerwiseError as exc:
                skipped.append(f"{experiment.name}: {plan_name}: {exc}")
                continue
            predicted = simulate_fn(experiment, plan_name, plan, profile, None)
            baseline = simulate_fn(experiment, plan_name, plan, reference, None)
            predictions.append(ExtrapolatedPrediction(
                experiment_name=experiment.name,
                cluster_name=experiment.cluster.name,
                plan_name=plan_name,
                plan_description=plan.describe(),
                devices=plan.num_devices,
                tokens_per_s=predicted.tokens_per_s,
                step_time_s=predicted.step_time_s,
                breakdown_s=dict(predicted.breakdown_s),
                uncalibrated_tokens_per_s=baseline.tokens_per_s,
                claimed_tokens_per_s=experiment.paper_claims_tokens_per_s.get(plan_name),
                regime=regime_of(experiment.workload.phase, experiment.workload.cuda_graphs),
                components=plan_components(plan, experiment.cluster, loops_back=experiment.workload.phase == "decode"),
                gpu_name=gpu,
                profile_note=note,
            ))
    return Extrapolation(predictions=tuple(predictions), skipped=tuple(skipped))
