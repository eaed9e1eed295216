"""The report's section on plans: measured plans compared, and experiments beyond the measured scale."""

from __future__ import annotations

from topology.accuracy import RegimeError, band_for, describe_band, unvalidated_components
from validate.comparisons import explain_difference, measured_comparisons
from validate.crossval import Outcome
from validate.extrapolation import ExtrapolatedPrediction, Extrapolation
from validate.report import plots
from validate.report.document import Block, Bullets, Figure, Heading, Paragraph, Table

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
            "**Multi-GPU measurements were not possible: only one GPU was available.** On one GPU a tensor-"
            "parallel plan and a pipeline are the same single stage, so plans that split a model across GPUs "
            "cannot be compared on hardware here. The measured comparisons below are single-GPU plans that differ "
            "in microbatches, CUDA graphs against eager launches, and models; they test the parts of the "
            "simulator that every plan rests on (weight streaming, L2 residency, launch overheads), not its "
            "communication model."))
    else:
        blocks.append(Paragraph(f"Measurements used up to {measured_devices} GPUs; multi-GPU schedules measured: "
                                f"{', '.join(sorted(schedules)) or 'none'}."))
    if unmeasured:
        blocks += [Paragraph("Shipped experiments that no run measured (they need more GPUs than were measured):"),
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


def prediction_band(p: ExtrapolatedPrediction, bands: tuple[RegimeError, ...], measured_gpu: str) -> tuple[str, float]:
    """The phrase a prediction carries (the band of its regime and parts, or none) and the band's half
    width (0 without one).

    A band holds for the GPU its runs were measured on; a prediction for another GPU has none, and
    the components no run exercised are named beside it (:func:`topology.accuracy.describe_band`).
    """
    band = band_for(bands, p.regime, components=p.components).band if p.gpu_name == measured_gpu else None
    text = describe_band(band, unvalidated_components(p.components, band))
    if band is None and p.gpu_name != measured_gpu:
        rest = text.removeprefix("no validation band; ")
        text = f"no band for {p.gpu_name} (runs measured on {measured_gpu}); {rest}"
    return text, band.half_width if band else 0.0


def claim_ratios(predictions: tuple[ExtrapolatedPrediction, ...]) -> list[str]:
    """For each experiment on each cluster with two or more claimed plans: every claimed plan's
    predicted and claimed throughput relative to the plan claimed slowest."""
    lines = []
    for setup in dict.fromkeys((p.experiment_name, p.cluster_name) for p in predictions):
        claimed = [p for p in predictions
                   if (p.experiment_name, p.cluster_name) == setup and p.claimed_tokens_per_s is not None]
        if len(claimed) < 2:
            continue
        reference = min(claimed, key=lambda p: p.claimed_tokens_per_s or 0.0)
        for p in claimed:
            if p is reference:
                continue
            predicted = p.tokens_per_s / reference.tokens_per_s
            stated = (p.claimed_tokens_per_s or 0.0) / (reference.claimed_tokens_per_s or 1.0)
            winner = p.plan_name if predicted > 1 else reference.plan_name
            lines.append(f"`{setup[0]}` on `{setup[1]}`: {p.plan_name} / {reference.plan_name} = {predicted:.2f}x "
                         f"predicted against {stated:.2f}x claimed; {winner} wins in the simulator; see the error "
                         "band column for what the prediction rests on")
    return lines


def _extrapolation(extrapolation: Extrapolation | None, note: str, bands: tuple[RegimeError, ...],
                   measured_gpu: str) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Beyond the measured scale")]
    if extrapolation is None or not extrapolation.predictions:
        return [*blocks, Paragraph(f"The extrapolation could not be made: {note or 'no prediction'}.")]
    predictions = extrapolation.predictions
    phrases = [prediction_band(p, bands, measured_gpu) for p in predictions]
    profile_notes = "; ".join(dict.fromkeys(p.profile_note for p in predictions))
    blocks.append(Paragraph(
        f"The calibrated simulator on experiments no run measured. Profile: {profile_notes}. Each number carries "
        "the held-out band of **its own regime** only, and names the components of its plan that no measured run "
        "exercised: those have no error band, and the number may be off by more than the band says. Claims are "
        "the experiment file's (`paper_claims_tokens_per_s`), shown beside, never fitted."))
    rows = []
    for p, (phrase, _) in zip(predictions, phrases, strict=True):
        claim = f"{p.claimed_tokens_per_s:,.0f}" if p.claimed_tokens_per_s is not None else "-"
        rows.append((p.experiment_name, p.cluster_name, p.plan_name, p.plan_description, str(p.devices),
                     f"{p.tokens_per_s:,.0f}", phrase, f"{1e3 * p.step_time_s:.3f}",
                     f"{p.uncalibrated_tokens_per_s:,.0f}", claim, _causes(p.breakdown_s)))
    blocks.append(Table(("experiment", "cluster", "plan", "layout", "GPUs", "predicted tokens/s", "error band",
                         "step ms", "uncalibrated tokens/s", "claimed", "largest simulated causes"), tuple(rows)))
    ratios = claim_ratios(predictions)
    if ratios:
        blocks.append(Bullets(tuple(ratios)))
    if extrapolation.skipped:
        blocks += [Paragraph("Plans that could not be built:"), Bullets(extrapolation.skipped)]
    labels = [f"{p.experiment_name}\n{p.cluster_name}\n{p.plan_name}" for p in predictions]
    blocks.append(Figure("extrapolation.png",
                         plots.extrapolation_png(labels, [p.tokens_per_s for p in predictions],
                                                 [mape for _, mape in phrases],
                                                 [p.claimed_tokens_per_s for p in predictions]),
                         "Predicted tokens/s beside the experiment files' claims; error bars: the kernels' held-out "
                         "band of the prediction's regime (the communication multi-GPU plans depend on has no band)."))
    return blocks


def plans_section(outcomes: tuple[Outcome, ...], extrapolation: Extrapolation | None, note: str,
                  unmeasured: tuple[str, ...], measured_devices: int, bands: tuple[RegimeError, ...]) -> list[Block]:
    measured_gpu = outcomes[0].measurement.gpu_name if outcomes else ""
    return [
        Heading(2, "Plans compared"),
        *_measured_scale(outcomes, unmeasured, measured_devices),
        *_extrapolation(extrapolation, note, bands, measured_gpu),
    ]
