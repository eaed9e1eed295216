"""The report's section on the seed's question: TP x PP baseline against layer-wise pipelining."""

from __future__ import annotations

from topology.accuracy import RegimeError, band_for, describe_band, unvalidated_components
from validate import plots
from validate.crossval import Outcome
from validate.document import Block, Bullets, Figure, Heading, Paragraph, Table
from validate.seed_question import (
    SEED_EXPERIMENT,
    SeedExtrapolation,
    SeedPrediction,
    explain_difference,
    measured_comparisons,
)

TOP_CAUSES = 3  # breakdown components named per plan


def _causes(breakdown_s: dict[str, float]) -> str:
    top = sorted(breakdown_s.items(), key=lambda kv: kv[1], reverse=True)[:TOP_CAUSES]
    return ", ".join(f"{name} {1e6 * value:.0f} us" for name, value in top) or "n/a"


def _graphs_vs_eager(outcomes: tuple[Outcome, ...]) -> list[tuple[str, ...]]:
    """Rows for experiments measured both with CUDA graphs and eager, everything else equal."""
    by_setup: dict[tuple[str, str], dict[bool, Outcome]] = {}
    for o in outcomes:
        w = o.measurement.experiment.workload
        setup = (o.measurement.group_key.rsplit(",", 1)[0], o.measurement.plan.describe())
        by_setup.setdefault(setup, {})[w.cuda_graphs] = o
    rows: list[tuple[str, ...]] = []
    for (group, plan), pair in sorted(by_setup.items()):
        if True in pair and False in pair:
            graphs, eager = pair[True], pair[False]
            rows.append((group, plan, f"{1e3 * graphs.measured_step_time_s:.3f}",
                         f"{1e3 * eager.measured_step_time_s:.3f}",
                         f"{eager.measured_step_time_s / graphs.measured_step_time_s:.2f}x",
                         f"{eager.final.step_time_s / graphs.final.step_time_s:.2f}x"))
    return rows


def _measured_scale(outcomes: tuple[Outcome, ...], unmeasured: tuple[str, ...], measured_devices: int) -> list[Block]:
    blocks: list[Block] = [Heading(3, "At the measured scale")]
    schedules = {o.measurement.plan.schedule for o in outcomes if o.measurement.plan.num_devices > 1}
    if measured_devices <= 1:
        blocks.append(Paragraph(
            "**Multi-GPU measurements were not possible: only one GPU was available.** On one GPU a TP baseline "
            "and a layer-wise pipeline are the same single stage, so the seed's comparison cannot be measured "
            "here. The measured comparisons below are single-GPU plans that differ in microbatches, CUDA graphs "
            "against eager launches, and models; they test the parts of the simulator the seed's answer rests on "
            "(weight streaming, L2 residency, launch overheads), not its communication model."))
    else:
        blocks.append(Paragraph(f"Measurements used up to {measured_devices} GPUs; multi-GPU schedules measured: "
                                f"{', '.join(sorted(schedules)) or 'none'}."))
    if unmeasured:
        blocks += [Paragraph("Runs of the seed's question that are missing (they need more GPUs than were measured):"),
                   Bullets(unmeasured)]
    comparisons = measured_comparisons(outcomes)
    for comparison in comparisons:
        rows = tuple(
            (o.measurement.key, o.measurement.plan.describe(), f"{1e3 * o.measured_step_time_s:.3f}",
             f"{o.measurement.result.metrics.tokens_per_s:,.0f}", f"{1e3 * o.held_out.step_time_s:.3f}",
             _causes(o.final.breakdown_s))
            for o in comparison.outcomes
        )
        blocks += [
            Paragraph(f"**{comparison.group}**"),
            Table(("experiment", "plan", "measured ms", "measured tokens/s", "held-out predicted ms",
                   "largest simulated causes (fitted)"), rows),
            Paragraph(explain_difference(comparison.outcomes[0], comparison.outcomes[-1])),
        ]
    graphs_rows = _graphs_vs_eager(outcomes)
    if graphs_rows:
        blocks += [Paragraph("**CUDA graphs against eager launches** (slowdown of eager, measured and simulated):"),
                   Table(("setup", "plan", "graphs ms", "eager ms", "measured slowdown", "simulated slowdown"),
                         tuple(graphs_rows))]
    if not comparisons and not graphs_rows:
        blocks.append(Paragraph("No two measured experiments differ only in plan or only in CUDA graphs."))
    return blocks


def prediction_band(p: SeedPrediction, bands: tuple[RegimeError, ...], measured_gpu: str) -> tuple[str, float]:
    """The phrase a prediction carries (its own regime's band, or none) and the band's MAPE (0 without one).

    A band holds for the GPU its runs were measured on; a prediction for another GPU has none, and
    the components no run exercised are named beside it (:func:`topology.accuracy.describe_band`).
    """
    band = band_for(bands, p.regime) if p.gpu_name == measured_gpu else None
    text = describe_band(band, unvalidated_components(p.components, band))
    if band is None and p.gpu_name != measured_gpu:
        rest = text.removeprefix("no validation band; ")
        text = f"no band for {p.gpu_name} (runs measured on {measured_gpu}); {rest}"
    return text, band.mape if band else 0.0


def _extrapolation(seed: SeedExtrapolation | None, seed_note: str, bands: tuple[RegimeError, ...],
                   measured_gpu: str) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Extrapolation to the seed's 16 x H100 experiment")]
    if seed is None or not seed.predictions:
        return [*blocks, Paragraph(f"The extrapolation could not be made: {seed_note or 'no prediction'}.")]
    phrases = [prediction_band(p, bands, measured_gpu) for p in seed.predictions]
    blocks.append(Paragraph(
        f"The calibrated simulator on `{SEED_EXPERIMENT}` (both cluster variants), decode, batch 128, context "
        f"10000. Profile: {seed.profile_note}. Each number carries the held-out band of **its own regime** "
        "only, and names the components of its plan that no measured run exercised: those have no error band, "
        "and the number may be off by more than the band says."))
    rows = []
    for p, (phrase, _) in zip(seed.predictions, phrases, strict=True):
        claim = f"{p.claimed_tokens_per_s:,.0f}" if p.claimed_tokens_per_s is not None else "-"
        rows.append((p.cluster_name, p.plan_name, p.plan_description, str(p.devices), f"{p.tokens_per_s:,.0f}",
                     phrase, f"{1e3 * p.step_time_s:.3f}", f"{p.uncalibrated_tokens_per_s:,.0f}", claim,
                     _causes(p.breakdown_s)))
    blocks.append(Table(("cluster", "plan", "layout", "GPUs", "predicted tokens/s", "error band", "step ms",
                         "uncalibrated tokens/s", "paper's claim", "largest simulated causes"), tuple(rows)))
    verdicts = []
    for cluster in sorted({p.cluster_name for p in seed.predictions}):
        by_plan = {p.plan_name: p for p in seed.predictions if p.cluster_name == cluster}
        if "baseline" in by_plan and "layer-wise" in by_plan:
            ratio = by_plan["layer-wise"].tokens_per_s / by_plan["baseline"].tokens_per_s
            verdicts.append(f"`{cluster}`: layer-wise / baseline = {ratio:.2f}x predicted (paper claims 1.20x); "
                            f"{'layer-wise' if ratio > 1 else 'the baseline'} wins in the simulator; both plans "
                            "depend on components no run measured (see the error band column)")
    if verdicts:
        blocks.append(Bullets(tuple(verdicts)))
    labels = [f"{p.cluster_name}\n{p.plan_name}" for p in seed.predictions]
    blocks.append(Figure("seed_prediction.png",
                         plots.seed_prediction_png(labels, [p.tokens_per_s for p in seed.predictions],
                                                   [mape for _, mape in phrases],
                                                   [p.claimed_tokens_per_s for p in seed.predictions]),
                         "Predicted tokens/s beside the paper's claims; error bars: the kernels' held-out band of "
                         "the prediction's regime (the communication the 16-GPU plans depend on has no band)."))
    return blocks


def seed_section(outcomes: tuple[Outcome, ...], seed: SeedExtrapolation | None, seed_note: str,
                 unmeasured: tuple[str, ...], measured_devices: int, bands: tuple[RegimeError, ...]) -> list[Block]:
    measured_gpu = outcomes[0].measurement.gpu_name if outcomes else ""
    return [
        Heading(2, "The seed's question"),
        Paragraph("The seed paper claims that layer-wise partitioning (one partition per GPU, sized to fit L2) "
                  "beats tensor x pipeline parallelism (TP=8, PP=2) on 16 H100s by 20% (15,360 against 12,800 "
                  "tokens/s)."),
        *_measured_scale(outcomes, unmeasured, measured_devices),
        *_extrapolation(seed, seed_note, bands, measured_gpu),
    ]
