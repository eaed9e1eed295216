"""The validation report: every section as document blocks, written as Markdown and HTML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from topology.atomic_io import write_bytes_atomic, write_text_atomic
from validate import plots
from validate.crossval import Validation
from validate.document import (
    FIGURES_DIR,
    Block,
    Bullets,
    Figure,
    Heading,
    Paragraph,
    Table,
    figures,
    to_html,
    to_markdown,
)
from validate.ranking import GroupRanking
from validate.report_seed import seed_section
from validate.seed_question import SeedExtrapolation
from validate.summary import (
    GOAL_AIM_MAPE,
    GOAL_EXPERIMENTS,
    GOAL_MAPE,
    GOAL_MAX_APE,
    VARIANT_LABELS,
    VARIANTS,
    phases,
    summarize,
)
from validate.timeline import Bar

TITLE = "layerwise validation report"
MARKDOWN_NAME = "report.md"
HTML_NAME = "report.html"
SYNTHETIC_WARNING = (
    "**SYNTHETIC DATA.** These \"measurements\" were produced by the simulator itself with perturbed "
    "parameters (test data, labelled source \"hardware\" only so the pipeline accepts them). Nothing in "
    "this report says anything about real GPUs."
)


@dataclass(frozen=True)
class Timelines:
    key: str  # the measured experiment shown
    simulated: list[Bar]
    profiled: list[Bar] | None
    profiled_note: str  # where the profiled trace came from, or why there is none


@dataclass(frozen=True)
class ReportInput:
    validation: Validation
    rankings_held_out: tuple[GroupRanking, ...]
    rankings_uncalibrated: tuple[GroupRanking, ...]
    command: str
    profile_label: str
    folds_label: str
    warmup_iters: int
    measured_iters: int
    timelines: Timelines | None
    seed: SeedExtrapolation | None
    seed_note: str  # why the extrapolation is missing, if it is
    unmeasured: tuple[str, ...]
    measured_devices: int
    synthetic: bool
    excluded: tuple[str, ...] = ()  # results kept out of fitting and error, with the reason


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3f}"


def headline(data: ReportInput) -> tuple[float | None, float | None]:
    """Held-out decode MAPE and max APE (the numbers quoted next to every extrapolation)."""
    s = summarize(data.validation.outcomes, "held_out", "decode")
    return (s.mape, s.max_ape) if s else (None, None)


def _summary(data: ReportInput) -> list[Block]:
    outcomes = data.validation.outcomes
    rows = []
    for phase in phases(outcomes):
        for variant in VARIANTS:
            s = summarize(outcomes, variant, phase)
            if s:
                rows.append((phase, VARIANT_LABELS[variant], str(s.count), _pct(s.mape), _pct(s.max_ape), s.worst_key))
    agree = sum(r.agrees for r in data.rankings_held_out)
    agree_unc = sum(r.agrees for r in data.rankings_uncalibrated)
    groups = len(data.rankings_held_out)
    decode = summarize(outcomes, "held_out", "decode")
    goals = []
    if decode:
        goals = [
            f"held-out decode MAPE {_pct(decode.mape)} (goal <= {_pct(GOAL_MAPE)}, aim {_pct(GOAL_AIM_MAPE)}): "
            + ("met" if decode.mape <= GOAL_MAPE else "**not met**"),
            f"worst held-out decode error {_pct(decode.max_ape)} at `{decode.worst_key}` (goal <= "
            f"{_pct(GOAL_MAX_APE)}): " + ("met" if decode.max_ape <= GOAL_MAX_APE else "**not met**"),
            f"{decode.count} measured decode experiments (goal >= {GOAL_EXPERIMENTS}): "
            + ("met" if decode.count >= GOAL_EXPERIMENTS else "**not met**"),
        ]
    else:
        goals = ["no decode experiments were measured: the decode goals cannot be assessed"]
    goals.append(f"rank agreement (held-out): {agree} of {groups} groups"
                 + ("" if groups else " (no group of plans differing only in plan was measured)")
                 + (": met" if groups and agree == groups else (": **not met**" if groups else "")))
    blocks: list[Block] = [
        Heading(2, "Summary"),
        Paragraph("Errors of the step time, |predicted - measured| / measured. Held-out rows come from fits "
                  "that never saw the experiment scored; training error is not shown as accuracy."),
        Table(("phase", "simulator", "experiments", "MAPE", "max APE", "worst experiment"), tuple(rows)),
        Table(("rank agreement", "groups agreeing on the best plan", "whole order agreeing"),
              (("held-out fit", f"{agree}/{groups}", f"{sum(r.order_agrees for r in data.rankings_held_out)}/{groups}"),
               ("uncalibrated", f"{agree_unc}/{groups}",
                f"{sum(r.order_agrees for r in data.rankings_uncalibrated)}/{groups}"))),
        Heading(3, "Goals"),
        Bullets(tuple(goals)),
    ]
    return blocks


def _method(data: ReportInput) -> list[Block]:
    v = data.validation
    fitted = ", ".join(f"`{s.name}`" for s in v.specs) or "(none)"
    bounds = tuple((s.name, f"{s.start:.4g}", f"{s.lower:.4g}", f"{s.upper:.4g}",
                    f"{v.final_fit.values.get(s.name, s.start):.4g}",
                    "not constrained by the data (kept at start)" if s.name in v.final_fit.unconstrained else "")
                   for s in v.specs)
    fold_rows = tuple(
        (str(f.index + 1), str(len(f.train)), ", ".join(v.outcomes[i].measurement.key for i in f.held_out),
         ", ".join(f"{k}={x:.4g}" for k, x in fit.values.items()), str(fit.evaluations))
        for f, fit in zip(v.folds, v.fold_fits, strict=True)
    )
    return [
        Heading(2, "Data and method"),
        Bullets((
            f"command: `{data.command}`",
            f"{len(v.outcomes)} measured experiments; calibration profile: {data.profile_label}",
            f"each measured experiment is re-simulated with the identical Plan recorded in its result, for "
            f"{data.warmup_iters} warmup + {data.measured_iters} measured iterations (the hardware ran more; "
            "the comparison is of steady-state step time, which a short simulated run already reaches)",
            f"fitted parameters: {fitted}, by scipy.optimize.least_squares on the relative error of the step "
            "time (decode and prefill experiments of the training split), each bounded, starting from the "
            "value the simulator uses without a fit",
            f"held-out error: {data.folds_label}; {v.simulations} distinct simulations in all",
            "kept out (kernel ablations: the same plan forced onto one attention kernel, which the simulator "
            "does not model): " + (", ".join(data.excluded) if data.excluded else "none"),
            "the final fit on all experiments is written to `fitted-profile.json` (source \"validate-fit\"); "
            f"its training MAPE is {_pct(v.final_fit.training_mape)}, shown for reference only, not as accuracy",
        )),
        Table(("parameter", "start", "lower", "upper", "final fit", "note"), bounds),
        Heading(3, "Folds"),
        Table(("fold", "trained on", "held out", "fitted values", "evaluations"), fold_rows),
    ]


def _errors(data: ReportInput) -> list[Block]:
    outcomes = data.validation.outcomes
    rows = tuple(
        (o.measurement.key, o.measurement.phase, o.measurement.plan.describe(), _ms(o.measured_step_time_s),
         _ms(o.held_out.step_time_s), _pct(o.relative_error("held_out")), _pct(o.relative_error("uncalibrated")),
         _pct(o.relative_error("datasheet")), str(o.fold + 1))
        for o in outcomes
    )
    return [
        Heading(2, "Measured vs predicted"),
        Figure("scatter.png", plots.scatter_png(outcomes),
               "Measured against predicted step time (log axes); the black line is y = x."),
        Heading(2, "Per-experiment error"),
        Figure("errors.png", plots.error_bars_png(outcomes),
               "Relative error per experiment: held-out fit and uncalibrated; dashed lines at 10% and 25%."),
        Table(("experiment", "phase", "plan", "measured ms", "held-out ms", "held-out err", "uncalibrated err",
               "datasheet err", "fold"), rows),
    ]


def _breakdown(data: ReportInput) -> list[Block]:
    outcomes = data.validation.outcomes
    components: list[str] = []
    for o in outcomes:
        components += [c for c in o.held_out.breakdown_s if c not in components]
    rows = []
    for o in outcomes:
        stages = o.measurement.result.metrics.stages
        measured = "; ".join(
            f"stage {s.stage}: compute {_ms(s.compute_s)}, comm {_ms(s.communication_s)}, idle {_ms(s.idle_s)}"
            for s in stages
        ) or "no per-stage times recorded"
        rows.append((o.measurement.key, *(_ms(o.held_out.breakdown_s.get(c, 0.0)) for c in components), measured))
    return [
        Heading(2, "Step-time breakdown"),
        Paragraph("Simulated step time by cause (held-out fit) beside the measured per-stage times (mean over "
                  "stages). All times in ms per step."),
        Figure("breakdown.png", plots.breakdown_png(outcomes), "Simulated breakdown (left bar) vs measured "
               "per-stage compute / communication / idle (right bar, hatched)."),
        Table(("experiment", *(f"sim {c}" for c in components), "measured per stage (ms)"), tuple(rows)),
    ]


def _timelines(data: ReportInput) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Timelines: simulated and profiled")]
    t = data.timelines
    if t is None:
        return [*blocks, Paragraph("No simulated trace could be produced for any measured experiment.")]
    beside = " beside the profiled one." if t.profiled else "."
    blocks.append(Paragraph(f"Experiment `{t.key}`: a steady-state window of the simulator's Chrome trace{beside} "
                            f"Profiled trace: {t.profiled_note}"))
    blocks.append(Figure("timelines.png", plots.timelines_png(t.simulated, t.profiled, f"simulated: {t.key}",
                                                              f"profiled: {t.key}"),
                         "Simulated (left) and profiled (right, when present) timelines of the same experiment."))
    if t.profiled is None:
        blocks.append(Paragraph("**No profiled trace is available for this experiment**, so only the simulated "
                                "timeline is shown; nothing is drawn in its place."))
    return blocks


def _ranking(data: ReportInput) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Rank agreement")]
    if not data.rankings_held_out:
        return [*blocks, Paragraph("No group of measured experiments differs only in plan, so there is no ranking "
                                   "to compare.")]
    rows = tuple(
        (r.group, r.measured_best, r.predicted_best, u.predicted_best, _pct(r.measured_margin),
         "yes" if r.agrees else "**no**", "yes" if r.order_agrees else "no")
        for r, u in zip(data.rankings_held_out, data.rankings_uncalibrated, strict=True)
    )
    blocks += [
        Paragraph("Groups of experiments with the same model, cluster and workload (differing only in plan). "
                  "Margin: how much slower the measured runner-up is than the measured best."),
        Table(("group", "measured best", "held-out best", "uncalibrated best", "margin", "agree", "order agrees"),
              rows),
    ]
    return blocks


def build_blocks(data: ReportInput) -> list[Block]:
    blocks: list[Block] = [Heading(1, TITLE)]
    if data.synthetic:
        blocks.append(Paragraph(SYNTHETIC_WARNING))
    blocks += _summary(data)
    blocks += _method(data)
    blocks += _errors(data)
    blocks += _breakdown(data)
    blocks += _timelines(data)
    blocks += _ranking(data)
    blocks += seed_section(data.validation.outcomes, data.seed, data.seed_note, data.unmeasured,
                           data.measured_devices, headline(data))
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
