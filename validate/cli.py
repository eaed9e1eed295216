"""``layerwise validate RESULTS... [--profile P] --out DIR``: fit the simulator to measured
runs, score it on experiments the fit never saw, and write the report and fitted profile."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from topology.atomic_io import check_output_folder, write_json_atomic
from topology.errors import LayerwiseError
from topology.profile import HardwareProfile, load_profile, write_profile
from validate.crossval import Validation, validate_measurements
from validate.extrapolation import Extrapolation, describe_experiment, extrapolate, load_target, unmeasured_experiments
from validate.folds import describe_folds, parse_folds, split_folds
from validate.kernel_kinds import kind_times
from validate.leases import LeaseComparison, compare_leases
from validate.measured import Measurement, load_measurements
from validate.prediction import with_sim_params, without_sim_params
from validate.ranking import agreement_by_kind, rank_groups
from validate.regimes import REGIME_CANDIDATES, default_params
from validate.report import MARKDOWN_NAME, ReportInput, Timelines, write_report
from validate.resimulate import (
    MEASURED_ITERS,
    WARMUP_ITERS,
    measurement_predictor,
    param_specs,
    responsive_params,
    simulate,
)
from validate.ship import check_ship_path, shipped_profile
from validate.summary import VARIANTS, regime_errors, regimes, summarize
from validate.timeline import load_trace_bars, steady_window
from validate.traces import find_profiled_trace

FITTED_PROFILE_NAME = "fitted-profile.json"
SUMMARY_NAME = "validation.json"
TIMELINE_STEPS = 2  # steady-state steps drawn in each timeline


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="measured result JSON files or folders (searched recursively)")
    parser.add_argument("--profile", help="calibration profile JSON (layerwise calibrate); default: datasheet only")
    parser.add_argument("--out", required=True, help="folder for report.md, report.html, fitted-profile.json")
    candidates = "; ".join(f"{regime}: {', '.join(names)}" for regime, names in REGIME_CANDIDATES.items())
    parser.add_argument("--params", help="comma-separated simulator parameters to fit, each on its own regime's "
                        f"runs (default: per regime, those of [{candidates}] the data responds to, at most one per "
                        "3 configurations of the regime; efficiencies the profile measured are not fitted)")
    parser.add_argument("--folds", help="'loo' or K for K-fold by experiment (default: loo up to 12 experiments, "
                        "else 5)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the fold shuffle (default 0)")
    parser.add_argument("--extrapolate", action="append", metavar="NAME[@CLUSTER]", default=[],
                        help="an experiment (shipped name or YAML path, optionally on another cluster preset) to "
                             "predict beyond the measured scale; repeatable (default: every shipped experiment "
                             "that needs more GPUs than any measured run used, in a number format the runs used)")
    parser.add_argument("--no-extrapolation", action="store_true",
                        help="predict no experiment beyond the measured scale")
    parser.add_argument("--compare-leases", nargs="+", metavar="RESULTS", default=[],
                        help="result files or folders of other machine leases: set beside the fitted runs of the "
                             "same entries in the report (how far step times move between leases), never fitted "
                             "or scored as accuracy")
    parser.add_argument("--ship-profile", metavar="PATH",
                        help="also write the fitted profile without its raw measurements to PATH, to ship with "
                             "the package (topology/data/profiles/<gpu preset>.json, loaded by name)")


def _progress(message: str) -> None:
    print(f"validate: {message}", file=sys.stderr, flush=True)


def _check_one_gpu(measurements: list[Measurement]) -> None:
    gpus = sorted({m.gpu_name for m in measurements})
    if len(gpus) > 1:
        raise LayerwiseError("results", f"span several GPU models ({', '.join(gpus)}); validate one at a time")


def _param_names(text: str | None, measurements: list[Measurement], base: HardwareProfile | None) -> tuple[str, ...]:
    if text:
        names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
        if not names:
            raise LayerwiseError("--params", "no parameter names given")
        return names
    predictor = measurement_predictor()
    return default_params(measurements, base, lambda names, runs: responsive_params(names, runs, base, predictor))


def _timelines(validation: Validation, fitted: HardwareProfile, out: Path) -> Timelines | None:
    """The simulated and (if committed) profiled timeline of one measured experiment."""
    candidates = sorted(
        validation.outcomes,
        key=lambda o: (find_profiled_trace(o.measurement) is None, -o.measurement.plan.num_stages, o.measurement.key),
    )
    if not candidates:
        return None
    chosen = candidates[0].measurement
    trace_path = out / "traces" / "simulated.trace.json"
    trace_path.parent.mkdir(parents=True, exist_ok=True)
    predicted = simulate(chosen.experiment, chosen.result.plan_name, chosen.plan, fitted, str(trace_path))
    if not trace_path.is_file():
        return None
    simulated_bars = load_trace_bars(trace_path)
    simulated = steady_window(simulated_bars, TIMELINE_STEPS * predicted.step_time_s)
    profiled_path = find_profiled_trace(chosen)
    if profiled_path is None:
        return Timelines(chosen.key, simulated, None,
                         "none committed beside this result (the executor's torch.profiler trace is missing).")
    profiled_bars = load_trace_bars(profiled_path, gpu_only=True)
    profiled = steady_window(profiled_bars, TIMELINE_STEPS * chosen.measured_step_time_s)
    kinds = kind_times(chosen.experiment.model, simulated_bars, predicted.step_time_s, profiled_bars,
                       chosen.measured_step_time_s)
    return Timelines(chosen.key, simulated, profiled, f"`{profiled_path}`.", kinds)


def _regime_row(validation: Validation, regime: str) -> dict[str, object]:
    row: dict[str, object] = {}
    for variant in VARIANTS:
        s = summarize(validation.outcomes, variant, regime)
        assert s is not None
        row.update(runs=s.count, configurations=s.configurations, leases=s.leases)
        row[variant] = {"mape": s.mape, "worst": s.max_ape, "worst_run": s.worst_key}
    return row


def _summary_json(validation: Validation, fitted_path: Path, rankings: tuple[object, ...],
                  compared: tuple[LeaseComparison, ...]) -> dict[str, object]:
    return {
        "regimes": {regime: _regime_row(validation, regime) for regime in regimes(validation.outcomes)},
        "rank_agreement": {kind: {"groups": g, "best_agrees": b, "order_agrees": o}
                           for kind, (g, b, o) in agreement_by_kind(rankings).items()},  # type: ignore[arg-type]
        "fitted_params": validation.final_fit.values,
        "unconstrained_params": list(validation.final_fit.unconstrained),
        "fitted_profile": str(fitted_path),
        "experiments": [
            {"key": o.measurement.key, "path": o.measurement.path, "regime": o.measurement.regime,
             "lease": o.measurement.lease, "fold": o.fold, "measured_step_time_s": o.measured_step_time_s,
             **{f"{v}_step_time_s": getattr(o, v).step_time_s for v in (*VARIANTS, "final")}}
            for o in validation.outcomes
        ],
        "compared_leases": [  # --compare-leases: never fitted, not in any band
            {"key": c.other.key, "path": c.other.path, "regime": c.other.regime, "lease": c.other.lease,
             "fitted_key": c.fitted.measurement.key, "measured_step_time_s": c.other.measured_step_time_s,
             "fitted_measured_step_time_s": c.fitted.measured_step_time_s,
             "held_out_step_time_s": c.fitted.held_out.step_time_s}
            for c in compared
        ],
    }


def _check_targets(args: argparse.Namespace) -> None:
    """``--extrapolate`` names that load (checked before the fit, so a typo fails at once)."""
    if args.extrapolate and args.no_extrapolation:
        raise LayerwiseError("--extrapolate", "cannot be combined with --no-extrapolation")
    for target in args.extrapolate:
        try:
            load_target(target)
        except LayerwiseError as exc:
            raise LayerwiseError("--extrapolate", f"{target!r}: {exc}") from None


def _extrapolate(args: argparse.Namespace, fitted: HardwareProfile, base: HardwareProfile | None,
                 measured_gpu_name: str, unmeasured: list[str]) -> tuple[Extrapolation | None, str]:
    """The predictions beyond the measured scale, or why there are none."""
    if args.no_extrapolation:
        return None, "skipped (--no-extrapolation)"
    try:
        extrapolation = extrapolate(args.extrapolate or unmeasured, fitted, base, measured_gpu_name, simulate,
                                    _progress)
    except LayerwiseError as exc:
        return None, str(exc)
    return extrapolation, "" if extrapolation.predictions else "no experiment needs more GPUs than were measured"


def run(args: argparse.Namespace) -> int:
    out = check_output_folder(args.out, "--out")  # before any fit
    _check_targets(args)
    loaded = load_measurements(list(args.results))
    measurements = [m for m in loaded if m.kernel_ablation is None]
    excluded = tuple(f"`{m.key}` ({m.kernel_ablation})" for m in loaded if m.kernel_ablation is not None)
    if not measurements:
        raise LayerwiseError("results", "every result is a kernel ablation; nothing to validate")
    _check_one_gpu(measurements)
    others = [m for m in load_measurements(list(args.compare_leases)) if m.kernel_ablation is None] \
        if args.compare_leases else []
    _check_one_gpu([*measurements, *others])
    profile = load_profile(args.profile) if args.profile else None
    base = without_sim_params(profile)
    gpu_name = profile.gpu_name if profile else measurements[0].gpu_name
    ship_path = check_ship_path(args.ship_profile, gpu_name) if args.ship_profile else None
    names = _param_names(args.params, measurements, base)
    specs = param_specs(names, measurements, base)
    configs = [m.config_key for m in measurements]  # repeats are held out together
    num_configs = len(set(configs))
    k = parse_folds(args.folds, num_configs)
    folds = split_folds(len(measurements), k, np.random.default_rng(args.split_seed), configs)
    folds_label = describe_folds(k, len(measurements), num_configs)
    _progress(f"{len(measurements)} measured experiments, fitting {', '.join(names) or '(nothing)'}, {folds_label}")
    validation = validate_measurements(measurements, measurement_predictor(), base, specs, folds, _progress)

    fitted = with_sim_params(base, validation.final_fit.values, gpu_name)
    bands = regime_errors(validation.outcomes, str(out / MARKDOWN_NAME))
    fitted = HardwareProfile(
        gpu_name=fitted.gpu_name, gpu_count=fitted.gpu_count, params=fitted.params,
        environment={**fitted.environment, "validate": {
            "results": [m.path for m in measurements], "calibration_profile": args.profile,
            "unconstrained_params": list(validation.final_fit.unconstrained)}},
        raw=fitted.raw, source="validate-fit", validation=bands,
    )
    fitted_path = write_profile(out / FITTED_PROFILE_NAME, fitted)
    if ship_path is not None:
        write_profile(ship_path, shipped_profile(fitted, fitted_path, args.results))

    timelines = _timelines(validation, fitted, out)
    measured_devices = max(m.plan.num_devices for m in measurements)
    unmeasured = unmeasured_experiments(measured_devices, {m.experiment.model.dtype_bytes for m in measurements})
    extrapolation, extrapolation_note = _extrapolate(args, fitted, base, measurements[0].gpu_name, unmeasured)
    synthetic = any(bool(m.result.environment.get("synthetic")) for m in measurements)
    rankings = rank_groups(validation.outcomes, "held_out")
    compared, unmatched = compare_leases(validation.outcomes, others)
    data = ReportInput(
        validation=validation,
        bands=bands,
        rankings_held_out=rankings,
        rankings_uncalibrated=rank_groups(validation.outcomes, "uncalibrated"),
        command="layerwise validate " + " ".join(shlex.quote(a) for a in _command_args(args)),
        profile_label=f"`{args.profile}`" if args.profile else "none (datasheet only; uncalibrated = datasheet)",
        folds_label=folds_label,
        warmup_iters=WARMUP_ITERS,
        measured_iters=MEASURED_ITERS,
        timelines=timelines,
        extrapolation=extrapolation,
        extrapolation_note=extrapolation_note,
        unmeasured=tuple(describe_experiment(name) for name in unmeasured),
        measured_devices=measured_devices,
        synthetic=synthetic,
        excluded=excluded,
        compared=compared,
        compared_unmatched=unmatched,
    )
    markdown, page = write_report(out, data)
    write_json_atomic(out / SUMMARY_NAME, _summary_json(validation, fitted_path, rankings, compared))
    for band in bands:
        print(f"held-out {band.regime}: MAPE {100 * band.mape:.1f}%, worst {100 * band.worst:.1f}% "
              f"({band.runs} runs, {band.configurations} configurations, {band.hosts} leases)")
    print(f"fitted {validation.final_fit.values}")
    print(f"wrote {markdown}, {page}, {fitted_path}" + (f", {ship_path}" if ship_path is not None else ""))
    return 0


def _command_args(args: argparse.Namespace) -> list[str]:
    words = [*args.results, "--out", str(args.out)]
    if args.profile:
        words += ["--profile", args.profile]
    if args.params:
        words += ["--params", args.params]
    if args.folds:
        words += ["--folds", args.folds]
    if args.split_seed:
        words += ["--split-seed", str(args.split_seed)]
    for target in args.extrapolate:
        words += ["--extrapolate", target]
    if args.no_extrapolation:
        words.append("--no-extrapolation")
    if args.compare_leases:
        words += ["--compare-leases", *args.compare_leases]
    if args.ship_profile:
        words += ["--ship-profile", args.ship_profile]
    return words
