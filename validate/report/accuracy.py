"""The report's accuracy sections: error by regime with the goals, and per-experiment error."""

from __future__ import annotations

from topology.accuracy import COMPONENT_WORDS, COMPONENTS, RegimeError
from validate.crossval import Outcome
from validate.ranking import GroupRanking, describe_agreement
from validate.report import plots
from validate.report.document import Block, Bullets, Figure, Heading, Paragraph, Table
from validate.summary import (
    GOAL_AIM_MAPE,
    GOAL_EXPERIMENTS,
    GOAL_MAPE,
    GOAL_MAX_APE,
    GOAL_PREFILL_MAPE,
    VARIANT_LABELS,
    VARIANTS,
    regimes,
    summarize,
)

REGIME_WORDS = {
    "decode-graph": "decode, CUDA graphs (device-bound)",
    "decode-eager": "decode, eager launches (host-bound when kernels are short)",
    "prefill": "prefill (compute-bound)",
}


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3f}"


def regime_table(outcomes: tuple[Outcome, ...]) -> Table:
    """The headline: one row per regime, held-out error beside the unfitted and datasheet ones."""
    rows = []
    for regime in regimes(outcomes):
        held, unfitted, sheet = (summarize(outcomes, v, regime) for v in VARIANTS)
        assert held is not None and unfitted is not None and sheet is not None
        rows.append((regime, str(held.count), str(held.configurations), str(held.leases), pct(held.mape),
                     pct(held.max_ape), f"`{held.worst_key}`", pct(unfitted.mape), pct(sheet.mape)))
    return Table(("regime", "runs", "configurations", "leases", "held-out MAPE", "worst", "worst run",
                  "no fit (profile only)", "datasheet only"), tuple(rows))


def _goals(outcomes: tuple[Outcome, ...], rankings: tuple[GroupRanking, ...]) -> list[str]:
    goals = []
    graph = summarize(outcomes, "held_out", "decode-graph")
    if graph:
        goals += [
            f"held-out decode-graph MAPE {pct(graph.mape)} (goal <= {pct(GOAL_MAPE)}, aim {pct(GOAL_AIM_MAPE)}): "
            + ("met" if graph.mape <= GOAL_MAPE else "**not met**"),
            f"worst held-out decode-graph error {pct(graph.max_ape)} at `{graph.worst_key}` (goal <= "
            f"{pct(GOAL_MAX_APE)}): " + ("met" if graph.max_ape <= GOAL_MAX_APE else "**not met**"),
        ]
    else:
        goals.append("no decode run with CUDA graphs was measured: the decode goals cannot be assessed")
    decode_runs = sum(1 for o in outcomes if o.measurement.phase == "decode")
    goals.append(f"{decode_runs} measured decode runs (goal >= {GOAL_EXPERIMENTS}): "
                 + ("met" if decode_runs >= GOAL_EXPERIMENTS else "**not met**"))
    held, unfitted = summarize(outcomes, "held_out", "prefill"), summarize(outcomes, "uncalibrated", "prefill")
    if held and unfitted:
        met = held.mape <= GOAL_PREFILL_MAPE and held.mape < unfitted.mape
        goals.append(f"held-out prefill MAPE {pct(held.mape)} (goal <= {pct(GOAL_PREFILL_MAPE)} and below the "
                     f"unfitted {pct(unfitted.mape)}): " + ("met" if met else "**not met**"))
    else:
        goals.append("no prefill run was measured: the prefill goal cannot be assessed")
    goals += [f"rank agreement, {line}" for line in describe_agreement(rankings)]
    return goals


def _coverage(bands: tuple[RegimeError, ...]) -> str:
    exercised = {c for band in bands for c in band.components}
    missing = [COMPONENT_WORDS[c] for c in COMPONENTS if c not in exercised]
    gpus = sorted({band.gpu for band in bands})
    text = (f"Every band was measured on {', '.join(gpus)} and covers only what its runs exercised: "
            + ", ".join(COMPONENT_WORDS[c] for c in COMPONENTS if c in exercised) + ".")
    if missing:
        text += (f" **Not validated by any run: {', '.join(missing)}**, nor any other GPU; a prediction that "
                 "depends on them carries its regime's band for the kernels only and names them as unvalidated.")
    return text


def summary_section(outcomes: tuple[Outcome, ...], bands: tuple[RegimeError, ...],
                    rankings: tuple[GroupRanking, ...]) -> list[Block]:
    detail = []
    for regime in regimes(outcomes):
        for variant in VARIANTS:
            s = summarize(outcomes, variant, regime)
            assert s is not None
            detail.append((regime, VARIANT_LABELS[variant], str(s.count), pct(s.mape), pct(s.max_ape), s.worst_key))
    return [
        Heading(2, "Summary"),
        Paragraph("Error of the step time, |predicted - measured| / measured, **by regime**: decode with CUDA "
                  "graphs (device-bound), decode with eager launches (host-bound when kernels are short, and "
                  "varying from one machine lease to the next), and prefill. Held-out figures come from fits that "
                  "never saw the configuration scored; each regime is fitted on its own runs. Training error is "
                  "not shown as accuracy."),
        regime_table(outcomes),
        Paragraph(_coverage(bands)),
        Heading(3, "Goals"),
        Bullets(tuple(_goals(outcomes, rankings))),
        Heading(3, "Every variant"),
        Table(("regime", "simulator", "runs", "MAPE", "max APE", "worst run"), tuple(detail)),
    ]


def errors_section(outcomes: tuple[Outcome, ...]) -> list[Block]:
    rows = tuple(
        (o.measurement.key, o.measurement.regime, o.measurement.plan.describe(), ms(o.measured_step_time_s),
         ms(o.held_out.step_time_s), pct(o.relative_error("held_out")), pct(o.relative_error("uncalibrated")),
         pct(o.relative_error("datasheet")), str(o.fold + 1))
        for o in sorted(outcomes, key=lambda o: (o.measurement.regime, o.measurement.key))
    )
    return [
        Heading(2, "Measured vs predicted"),
        Figure("scatter.png", plots.scatter_png(outcomes),
               "Measured against predicted step time (log axes); the black line is y = x."),
        Heading(2, "Per-experiment error"),
        Figure("errors.png", plots.error_bars_png(outcomes),
               "Relative error per run, grouped by regime: held-out fit and uncalibrated; dashed lines at "
               "10% and 25%."),
        Table(("experiment", "regime", "plan", "measured ms", "held-out ms", "held-out err", "uncalibrated err",
               "datasheet err", "fold"), rows),
    ]
