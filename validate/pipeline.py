"""The validation pipeline: load measured runs, fit named simulator parameters under k-fold
cross-validation (repeats of one configuration held out together), score held-out error per
regime, and write the report, the summary and the fitted profile. ``layerwise validate``
(:mod:`layerwise.commands.validate`) builds a :class:`ValidationRequest` and calls
:func:`run_validation`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim.inputs import ChosenProfile, ProfileChoice, choose_measured_profile
from topology.accuracy import RegimeError
from topology.atomic_io import check_output_folder, staged_folder, write_json_atomic
from topology.errors import LayerwiseError
from topology.profile import HardwareProfile, write_profile
from validate.coverage import Coverage, nested_coverage
from validate.crossval import Validation, validate_measurements
from validate.extrapolation import Extrapolation, describe_experiment, extrapolate, load_target, unmeasured_experiments
from validate.folds import BY_FAMILY, BY_LABEL, Fold, describe_folds, label_folds, parse_folds, split_folds
from validate.kernel_kinds import kind_times
from validate.kernel_points import KernelSet, load_kernel_points
from validate.leases import LeaseComparison, compare_leases
from validate.measured import Measurement, load_measurements
from validate.prediction import with_sim_params, without_sim_params
from validate.ranking import agreement_by_kind, rank_groups
from validate.regimes import default_params
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
from validate.summary import VARIANTS, merge_bands, regime_errors, regimes, summarize
from validate.timeline import load_trace_bars, steady_window
from validate.traces import find_profiled_trace

FITTED_PROFILE_NAME = "fitted-profile.json"
SUMMARY_NAME = "validation.json"
REPORT_NAMES = (MARKDOWN_NAME, SUMMARY_NAME, FITTED_PROFILE_NAME)  # an earlier report: --out may replace it
TIMELINE_STEPS = 2  # steady-state steps drawn in each timeline
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ValidationRequest:
    """What to validate and where to write it (the command line's options, as values)."""

    results: tuple[str, ...]  # measured result files or folders
    out: str
    # the calibration profile the fit starts from (default: the shipped profile of the GPU the runs were
    # measured on, its measurements only: sim.inputs.choose_measured_profile)
    profile: ProfileChoice = field(default_factory=ProfileChoice)
    params: str | None = None  # comma-separated parameters to fit (default: per regime, those the data moves)
    folds: str | None = None
    split_seed: int = 0
    extrapolate: tuple[str, ...] = ()
    no_extrapolation: bool = False
    compare_leases: tuple[str, ...] = ()
    ship_profile: str | None = None
    kernels: tuple[str, ...] = ()  # kernel files timed alone, by shape family (validate.kernel_points)
    command: str = "layerwise validate"


@dataclass(frozen=True)
class ValidationOutcome:
    bands: tuple[RegimeError, ...]
    fitted_values: dict[str, float]
    written: tuple[str, ...]  # the report, the page, the fitted profile (and the shipped copy)


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


def _coverage_json(coverage: Coverage) -> dict[str, object]:
    return {"fraction_covered": coverage.fraction_covered, "promise_kept": coverage.promise_kept,
            "runs": [{"key": c.key, "regime": c.regime, "family": c.family, "plan_kind": c.plan_kind,
                      "error": c.error, "half_width": c.half_width, "band_from": c.band_from, "covered": c.covered}
                     for c in coverage.checks]}


def _summary_json(validation: Validation, fitted_path: Path, rankings: tuple[object, ...],
                  compared: tuple[LeaseComparison, ...], coverage: Coverage) -> dict[str, object]:
    return {
        "coverage": _coverage_json(coverage),
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


def _check_targets(args: ValidationRequest) -> None:
    """``--extrapolate`` names that load (checked before the fit, so a typo fails at once)."""
    if args.extrapolate and args.no_extrapolation:
        raise LayerwiseError("--extrapolate", "cannot be combined with --no-extrapolation")
    for target in args.extrapolate:
        try:
            load_target(target)
        except LayerwiseError as exc:
            raise LayerwiseError("--extrapolate", f"{target!r}: {exc}") from None


def _extrapolate(args: ValidationRequest, fitted: HardwareProfile, base: HardwareProfile | None,
                 measured_gpu_name: str, unmeasured: list[str]) -> tuple[Extrapolation | None, str]:
    """The predictions beyond the measured scale, or why there are none."""
    if args.no_extrapolation:
        return None, "skipped (--no-extrapolation)"
    try:
        extrapolation = extrapolate(list(args.extrapolate) or unmeasured, fitted, base, measured_gpu_name, simulate,
                                    _progress)
    except LayerwiseError as exc:
        return None, str(exc)
    return extrapolation, "" if extrapolation.predictions else "no experiment needs more GPUs than were measured"


def _folds(args: ValidationRequest, measurements: list[Measurement]) -> tuple[tuple[Fold, ...], str]:
    """K-fold by configuration (repeats held out together), or one fold per family or workload group."""
    if args.folds in BY_LABEL:
        if args.folds == BY_FAMILY:
            labels = [m.family or "(no family)" for m in measurements]
        else:
            labels = [m.workload_group for m in measurements]
        folds = label_folds(labels, args.folds)
        return folds, f"leave-one-{args.folds}-out ({len(folds)} folds, {len(measurements)} runs)"
    configs = [m.config_key for m in measurements]  # repeats are held out together
    num_configs = len(set(configs))
    k = parse_folds(args.folds, num_configs)
    folds = split_folds(len(measurements), k, np.random.default_rng(args.split_seed), configs)
    return folds, describe_folds(k, len(measurements), num_configs)


def _fold_profiles(args: ValidationRequest, folds: tuple[Fold, ...], measurements: list[Measurement],
                   kernels: KernelSet | None, calibration: HardwareProfile | None,
                   gpu_name: str) -> dict[int, HardwareProfile | None] | None:
    """Leaving a family out leaves its measured kernels out too."""
    if kernels is None or args.folds != BY_FAMILY:
        return None
    out: dict[int, HardwareProfile | None] = {}
    for fold in folds:
        family = measurements[fold.held_out[0]].family
        out[fold.index] = kernels.profile_with(calibration, gpu_name, without=family)
    return out


def _profile_label(chosen: ChosenProfile) -> str:
    if chosen.profile is None:
        return f"none: {chosen.label} (uncalibrated = datasheet)"
    return f"`{chosen.name}` ({chosen.origin}; its measurements, not its fitted parameters)"


def _staged(path: Path, out: Path, stage: Path) -> Path:
    """Where to write ``path`` now: inside the staging folder if it lies inside ``out``."""
    try:
        return stage / path.absolute().relative_to(out.absolute())
    except ValueError:
        return path


def check_request(args: ValidationRequest) -> Path:
    """Before any work: the output folder, the extrapolation targets, the ship path."""
    out = check_output_folder(args.out, "--out")
    _check_targets(args)
    return out


def run_validation(args: ValidationRequest, progress: Progress = _progress) -> ValidationOutcome:
    """The whole pipeline; see the module docstring. The report folder is written whole or not at all
    (:func:`topology.atomic_io.staged_folder`: beside ``--out``, renamed into place at the end)."""
    out = check_request(args)
    with staged_folder(out, REPORT_NAMES) as stage:
        return _validate_into(args, out, stage, progress)


def _validate_into(args: ValidationRequest, out: Path, stage: Path, progress: Progress) -> ValidationOutcome:
    """The pipeline, writing into ``stage`` what will be ``out`` (paths shown and recorded name ``out``)."""
    loaded = load_measurements(list(args.results))
    measurements = [m for m in loaded if m.kernel_ablation is None]
    excluded = tuple(f"`{m.key}` ({m.kernel_ablation})" for m in loaded if m.kernel_ablation is not None)
    if not measurements:
        raise LayerwiseError("results", "every result is a kernel ablation; nothing to validate")
    _check_one_gpu(measurements)
    others = [m for m in load_measurements(list(args.compare_leases)) if m.kernel_ablation is None] \
        if args.compare_leases else []
    _check_one_gpu([*measurements, *others])
    chosen = choose_measured_profile(measurements[0].gpu_name, args.profile)
    kernels = load_kernel_points(list(args.kernels)) if args.kernels else None
    gpu_name = chosen.profile.gpu_name if chosen.profile else measurements[0].device_name
    profile = kernels.profile_with(chosen.profile, gpu_name) if kernels else chosen.profile
    ship_path = check_ship_path(args.ship_profile, gpu_name) if args.ship_profile else None
    names = _param_names(args.params, measurements, without_sim_params(profile))
    base = without_sim_params(profile, names)  # the profile's other fitted values are kept
    specs = param_specs(names, measurements, base)
    folds, folds_label = _folds(args, measurements)
    fold_profiles = _fold_profiles(args, folds, measurements, kernels, without_sim_params(chosen.profile, names),
                                   gpu_name)
    progress(f"{len(measurements)} measured experiments, fitting {', '.join(names) or '(nothing)'}, {folds_label}")
    validation = validate_measurements(measurements, measurement_predictor(), base, specs, folds, progress,
                                       fold_profiles)

    fitted = with_sim_params(base, validation.final_fit.values, gpu_name)
    bands = merge_bands(chosen.profile.validation if chosen.profile else (),
                        regime_errors(validation.outcomes, str(out / MARKDOWN_NAME)))
    fitted = HardwareProfile(
        gpu_name=fitted.gpu_name, gpu_count=fitted.gpu_count, params=fitted.params,
        environment={**fitted.environment, "validate": {
            "results": [m.path for m in measurements], "calibration_profile": chosen.name,
            "unconstrained_params": list(validation.final_fit.unconstrained)}},
        raw=fitted.raw, source="validate-fit", validation=bands,
    )
    write_profile(stage / FITTED_PROFILE_NAME, fitted)
    fitted_path = out / FITTED_PROFILE_NAME
    if ship_path is not None:
        write_profile(_staged(ship_path, out, stage), shipped_profile(fitted, fitted_path, args.results))

    timelines = _timelines(validation, fitted, stage)
    measured_devices = max(m.plan.num_devices for m in measurements)
    unmeasured = unmeasured_experiments(measured_devices, {m.experiment.model.dtype_bytes for m in measurements})
    extrapolation, extrapolation_note = _extrapolate(args, fitted, base, measurements[0].gpu_name, unmeasured)
    synthetic = any(bool(m.result.environment.get("synthetic")) for m in measurements)
    rankings = rank_groups(validation.outcomes, "held_out")
    compared, unmatched = compare_leases(validation.outcomes, others)
    coverage = nested_coverage(validation.outcomes)
    data = ReportInput(
        validation=validation,
        bands=bands,
        rankings_held_out=rankings,
        rankings_uncalibrated=rank_groups(validation.outcomes, "uncalibrated"),
        command=args.command,
        profile_label=_profile_label(chosen),
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
        coverage=coverage,
    )
    markdown, page = (out / written.name for written in write_report(stage, data))
    write_json_atomic(stage / SUMMARY_NAME, _summary_json(validation, fitted_path, rankings, compared, coverage))
    written = (str(markdown), str(page), str(fitted_path), *((str(ship_path),) if ship_path is not None else ()))
    return ValidationOutcome(bands=bands, fitted_values=dict(validation.final_fit.values), written=written)
