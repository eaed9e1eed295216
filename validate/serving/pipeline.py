"""``layerwise validate-serving``'s work: fit the host parameters on the chosen runs, predict every run,
compare the held-out ones percentile by percentile, and the capacity of every rate ladder."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from serving.latency import serving_metrics
from serving.slo import SloSpec
from topology.profile import HardwareProfile
from validate.prediction import with_sim_params
from validate.serving.capacity import compare_capacity, ladders
from validate.serving.errors import RunComparison, compare, summarize
from validate.serving.host_fit import HOST_PARAMS, HostFit, fit_host
from validate.serving.report import ServingValidation
from validate.serving.runs import MeasuredServing, price_fn, run_basis, simulate_measured
from validate.serving.steadiness import steadiness

Say = Callable[[str], None]


def _host_params(profile: HardwareProfile | None, fit: HostFit | None, run: MeasuredServing) -> dict[str, float]:
    if fit is not None:
        return dict(fit.params)
    params = run_basis(run, profile, "profile").cost.params
    return {name: float(getattr(params, name)) for name in HOST_PARAMS}


def predict_run(run: MeasuredServing, profile: HardwareProfile, label: str) -> RunComparison:
    price = price_fn(run, run_basis(run, profile, label))
    simulated = simulate_measured(run, price)
    measured = serving_metrics(run.record.run.records, num_gpus=run.num_gpus)
    predicted = serving_metrics(simulated.records, num_gpus=run.num_gpus)
    return compare(run.name, run.rate_per_s, measured, predicted, len(run.record.run.iterations),
                   len(simulated.iterations), steadiness(run.record.run))


def validate_serving(folder: str, runs: Sequence[MeasuredServing], profile: HardwareProfile | None,
                     profile_label: str, fit_pattern: str | None, slos: SloSpec, say: Say) -> ServingValidation:
    chosen = re.compile(fit_pattern) if fit_pattern else None
    fit_runs = [run for run in runs if chosen is not None and chosen.search(run.name)]
    held = [run for run in runs if run not in fit_runs]
    gpu = str(runs[0].record.environment.get("gpu_name") or runs[0].setup.experiment.cluster.gpu.name)
    fit = None
    if chosen is not None:
        say(f"fitting {', '.join(HOST_PARAMS)} on {len(fit_runs)} runs")
        fit = fit_host(fit_runs, profile)
    params = _host_params(profile, fit, runs[0])
    fitted = with_sim_params(profile, params, gpu)
    comparisons: dict[str, RunComparison] = {}
    for index, run in enumerate(runs, 1):
        say(f"[{index}/{len(runs)}] {run.name}")
        comparisons[run.name] = predict_run(run, fitted, profile_label)
    held_out = tuple(comparisons[run.name] for run in held)
    capacities = []
    if slos.slos:
        for ladder in ladders(held):
            say(f"capacity of the ladder {ladder[0].name} .. ({len(ladder)} rates)")
            capacities.append(compare_capacity(ladder, price_fn(ladder[0], run_basis(ladder[0], fitted, "fitted")),
                                               slos))
    environment = runs[0].record.environment
    machine = f"{gpu} ({environment.get('hostname', '?')}, torch {environment.get('torch', '?')}, " \
              f"commit {str(environment.get('git_commit', '?'))[:10]})"
    return ServingValidation(folder=folder, profile_label=profile_label, machine=machine, fit=fit,
                             host_params=params, held_out=held_out,
                             in_sample=tuple(comparisons[run.name] for run in fit_runs),
                             summary=tuple(summarize(held_out)), slos=slos, capacities=tuple(capacities))
