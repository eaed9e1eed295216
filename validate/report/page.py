"""The validation report: every section as document blocks, written as Markdown and HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from topology.accuracy import RegimeError
from topology.atomic_io import write_bytes_atomic, write_text_atomic
from validate.coverage import Coverage
from validate.crossval import Validation
from validate.extrapolation import Extrapolation
from validate.fit import ParamSpec
from validate.leases import LeaseComparison
from validate.measured import Measurement
from validate.ranking import GroupRanking
from validate.regimes import MIN_CONFIGS_PER_PARAM, regime_of_param, runs_of
from validate.report.accuracy import errors_section, pct, summary_section
from validate.report.breakdown import Timelines, breakdown_section, timelines_section
from validate.report.coverage import coverage_section
from validate.report.document import (
    FIGURES_DIR,
    Block,
    Bullets,
    Heading,
    Paragraph,
    Table,
    figures,
    to_html,
    to_markdown,
)
from validate.report.extrapolation import plans_section
from validate.report.leases import leases_section
from validate.report.ranking import ranking_section

TITLE = "layerwise validation report"
MARKDOWN_NAME = "report.md"
HTML_NAME = "report.html"
SYNTHETIC_WARNING = (
    "**SYNTHETIC DATA.** These \"measurements\" were produced by the simulator itself with perturbed "
    "parameters (test data, labelled source \"hardware\" only so the pipeline accepts them). Nothing in "
    "this report says anything about real GPUs."
)

__all__ = ["ReportInput", "Timelines", "build_blocks", "write_report"]


@dataclass(frozen=True)
class ReportInput:
    validation: Validation
    bands: tuple[RegimeError, ...]  # held-out error by regime (what fitted-profile.json carries)
    rankings_held_out: tuple[GroupRanking, ...]
    rankings_uncalibrated: tuple[GroupRanking, ...]
    command: str
    profile_label: str
    folds_label: str
    warmup_iters: int
    measured_iters: int
    timelines: Timelines | None
    extrapolation: Extrapolation | None
    extrapolation_note: str  # why the extrapolation is missing, if it is
    unmeasured: tuple[str, ...]
    measured_devices: int
    synthetic: bool
    excluded: tuple[str, ...] = ()  # results kept out of fitting and error, with the reason
    compared: tuple[LeaseComparison, ...] = ()  # other leases' runs beside the fitted ones (never fitted)
    compared_unmatched: tuple[str, ...] = ()  # other leases' runs with no fitted run of the same entry
    coverage: Coverage = field(default_factory=lambda: Coverage(()))  # held-out runs against their nested bands


def _param_note(spec: ParamSpec, value: float, measurements: list[Measurement], unconstrained: tuple[str, ...]) -> str:
    name = spec.name
    regime = regime_of_param(name)
    runs = runs_of(measurements, regime)
    configs = len({m.config_key for m in runs})
    text = f"fitted on the {regime} runs ({len(runs)} runs, {configs} configurations)"
    if not runs:
        text = f"no {regime} run: kept at start"
    elif name in unconstrained:
        text += "; not constrained by them (kept at start)"
    elif (bound := spec.bound_reached(value)) is not None:
        text += (f"; **at its {bound} bound**: the fit would go further, so this value stands in for something "
                 "the model lacks (read it as a correction, not as a measured property)")
    return text


def _method(data: ReportInput) -> list[Block]:
    v = data.validation
    measurements = [o.measurement for o in v.outcomes]
    fitted = ", ".join(f"`{s.name}`" for s in v.specs) or "(none)"
    bounds = tuple((s.name, f"{s.start:.4g}", f"{s.lower:.4g}", f"{s.upper:.4g}",
                    f"{v.final_fit.values.get(s.name, s.start):.4g}",
                    _param_note(s, v.final_fit.values.get(s.name, s.start), measurements, v.final_fit.unconstrained))
                   for s in v.specs)
    fold_rows = tuple(
        (str(f.index + 1), str(len(f.train)), ", ".join(v.outcomes[i].measurement.key for i in f.held_out),
         ", ".join(f"{k}={x:.4g}" for k, x in fit.values.items()), str(fit.evaluations))
        for f, fit in zip(v.folds, v.fold_fits, strict=True)
    )
    return [
        Heading(2, "Data and method"),
        Bullets((
            "command: at the top of this report",
            f"{len(v.outcomes)} measured runs; calibration profile: {data.profile_label}",
            f"each measured run is re-simulated with the identical Plan recorded in its result, for "
            f"{data.warmup_iters} warmup + {data.measured_iters} measured iterations (the hardware ran more; "
            "the comparison is of steady-state step time, which a short simulated run already reaches)",
            f"fitted parameters: {fitted}, by scipy.optimize.least_squares on the relative error of the step "
            "time, each bounded, starting from the value the simulator uses without a fit. **Each regime fits "
            "its own parameters on its own runs**, in order: decode-graph (device parameters), then "
            "decode-eager (host launch cost) on top of them, then prefill (its time scales) on top of both; "
            f"a regime fits at most one parameter per {MIN_CONFIGS_PER_PARAM} of its configurations",
            f"held-out error: {data.folds_label}; {v.simulations} distinct simulations in all",
            "kept out (kernel ablations: the same plan forced onto one attention kernel, which the simulator "
            "does not model): " + (", ".join(data.excluded) if data.excluded else "none"),
            "the final fit on all runs is written to `fitted-profile.json` (source \"validate-fit\") with the "
            "held-out band of each regime; its training MAPE is "
            f"{pct(v.final_fit.training_mape)}, shown for reference only, not as accuracy",
        )),
        Table(("parameter", "start", "lower", "upper", "final fit", "note"), bounds),
        Heading(3, "Folds"),
        Table(("fold", "trained on", "held out", "fitted values", "evaluations"), fold_rows),
    ]


def build_blocks(data: ReportInput) -> list[Block]:
    outcomes = data.validation.outcomes
    blocks: list[Block] = [Heading(1, TITLE), Paragraph(f"Made by `{data.command}` (rerun it to regenerate this "
                                                        "report, its figures and its JSON).")]
    if data.synthetic:
        blocks.append(Paragraph(SYNTHETIC_WARNING))
    blocks += summary_section(outcomes, data.bands, data.rankings_held_out)
    blocks += _method(data)
    blocks += coverage_section(outcomes, data.coverage)
    blocks += errors_section(outcomes)
    blocks += leases_section(outcomes, data.compared, data.compared_unmatched)
    blocks += breakdown_section(outcomes)
    blocks += timelines_section(data.timelines)
    blocks += ranking_section(data.rankings_held_out, data.rankings_uncalibrated)
    blocks += plans_section(outcomes, data.extrapolation, data.extrapolation_note, data.unmeasured,
                            data.measured_devices, data.bands)
    if data.synthetic:
        blocks.append(Paragraph(SYNTHETIC_WARNING))
    return blocks


def write_report(out_dir: str | Path, data: ReportInput) -> tuple[Path, Path]:
    """Write ``report.md`` (figures under ``figures/``) and the standalone ``report.html``."""
    out = Path(out_dir)
    blocks = build_blocks(data)
    for figure in figures(blocks):
        write_bytes_atomic(out / FIGURES_DIR / figure.file_name, figure.png)
    markdown = write_text_atomic(out / MARKDOWN_NAME, to_markdown(blocks))
    page = write_text_atomic(out / HTML_NAME, to_html(blocks, TITLE))
    return markdown, page

