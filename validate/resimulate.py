"""Re-simulate measured experiments with ``sim.simulate`` (the identical Plan, fewer iterations).

Only steady state is compared, so re-simulation runs :data:`WARMUP_ITERS` warmup and
:data:`MEASURED_ITERS` measured iterations instead of the hundreds the hardware ran.
"""

from __future__ import annotations

from collections.abc import Callable

from sim.inputs import basis_of, given_profile
from sim.params import FITTABLE_PARAMS, resolve_params
from sim.resolve import plan_inputs
from sim.simulate import simulate as simulate_events
from topology.errors import LayerwiseError
from topology.experiment import Experiment
from topology.plan import Plan
from topology.profile import HardwareProfile
from topology.results import RunResult
from validate.fit import ParamSpec, param_spec
from validate.measured import Measurement, with_iterations
from validate.prediction import Prediction, PredictionMemo, Predictor

WARMUP_ITERS = 2
MEASURED_ITERS = 10
PROBE_STEP = 0.2  # relative change of a parameter when probing whether it matters
PROBE_RESPONSE_FLOOR = 1e-4  # relative change of some step time that counts as "it matters"

SimulateFn = Callable[[Experiment, str, Plan | None, HardwareProfile | None, str | None], Prediction]


def prediction_from_result(result: RunResult, trace_path: str | None = None) -> Prediction:
    metrics = result.metrics
    return Prediction(
        step_time_s=metrics.step_time_s,
        tokens_per_s=metrics.tokens_per_s,
        breakdown_s=metrics.breakdown.seconds() if metrics.breakdown is not None else {},
        stages=metrics.stages,
        trace_path=trace_path,
    )


def simulate(experiment: Experiment, plan_name: str, plan: Plan | None, profile: HardwareProfile | None,
             trace_path: str | None = None) -> Prediction:
    """One simulated run of ``plan`` (or the experiment's named plan), short steady state."""
    short = with_iterations(experiment, WARMUP_ITERS, MEASURED_ITERS)
    inputs = plan_inputs(basis_of(short, given_profile(profile, "the profile under validation")),
                         plan if plan is not None else plan_name)
    result = simulate_events(inputs, trace_path=trace_path)
    return prediction_from_result(result, trace_path)


def measurement_predictor(simulate_fn: SimulateFn = simulate) -> Predictor:
    def predict(measurement: Measurement, profile: HardwareProfile | None) -> Prediction:
        return simulate_fn(measurement.experiment, measurement.result.plan_name, measurement.plan, profile, None)

    return predict


def start_value(name: str, measurement: Measurement, profile: HardwareProfile | None) -> float:
    """What the simulator uses for ``name`` without a fit (datasheet, then profile)."""
    if name not in FITTABLE_PARAMS:
        raise LayerwiseError("--params", f"unknown simulator parameter {name!r} (known: {', '.join(FITTABLE_PARAMS)})")
    return float(getattr(resolve_params(measurement.experiment.cluster, profile), name))


def param_specs(names: tuple[str, ...], measurements: list[Measurement],
                profile: HardwareProfile | None) -> tuple[ParamSpec, ...]:
    return tuple(param_spec(name, start_value(name, measurements[0], profile)) for name in names)


def responsive_params(candidates: tuple[str, ...], measurements: list[Measurement], profile: HardwareProfile | None,
                      predictor: Predictor) -> tuple[str, ...]:
    """The candidates that change some measured experiment's simulated step time.

    Uses simulated times only (never the measured ones), so choosing the parameters leaks
    nothing about held-out measurements into the fit.
    """
    memo = PredictionMemo(predictor, profile, measurements[0].gpu_name)
    base = [memo.predict(m, {}).step_time_s for m in measurements]
    chosen = []
    for spec in param_specs(candidates, measurements, profile):
        up = spec.start * (1 + PROBE_STEP)
        probe = up if up <= spec.upper else spec.start * (1 - PROBE_STEP)
        moved = [abs(memo.predict(m, {spec.name: probe}).step_time_s / b - 1.0)
                 for m, b in zip(measurements, base, strict=True)]
        if max(moved) > PROBE_RESPONSE_FLOOR:
            chosen.append(spec.name)
    return tuple(chosen)
