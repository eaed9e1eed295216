"""The report's sections on where the time goes: simulated breakdown beside the measured
per-stage times, and a simulated timeline beside a profiled one."""

from __future__ import annotations

from dataclasses import dataclass

from validate.crossval import Outcome
from validate.kernel_kinds import KindTime
from validate.report import plots
from validate.report.accuracy import ms
from validate.report.document import Block, Figure, Heading, Paragraph, Table
from validate.summary import of_regime, regimes
from validate.timeline import Bar


@dataclass(frozen=True)
class Timelines:
    key: str  # the measured experiment shown
    simulated: list[Bar]
    profiled: list[Bar] | None
    profiled_note: str  # where the profiled trace came from, or why there is none
    kinds: tuple[KindTime, ...] = ()  # kernel time by kind, simulated (final fit) and profiled


def _measured_stages(o: Outcome) -> str:
    stages = o.measurement.result.metrics.stages
    return "; ".join(
        f"stage {s.stage}: compute {ms(s.compute_s)}, comm {ms(s.communication_s)}, idle {ms(s.idle_s)}"
        for s in stages
    ) or "no per-stage times recorded"


def breakdown_table(outcomes: tuple[Outcome, ...]) -> tuple[Table, list[str]]:
    """Simulated causes (held-out fit) beside the measured per-stage times; causes that show as 0
    in every row are left out (and returned, so the text can say which)."""
    causes: list[str] = []
    for o in outcomes:
        causes += [c for c in o.held_out.breakdown_s if c not in causes]
    shown = [c for c in causes if any(ms(o.held_out.breakdown_s.get(c, 0.0)) != ms(0.0) for o in outcomes)]
    rows = tuple((o.measurement.key, *(ms(o.held_out.breakdown_s.get(c, 0.0)) for c in shown), _measured_stages(o))
                 for o in outcomes)
    return Table(("experiment", *(f"sim {c}" for c in shown), "measured per stage (ms)"), rows), \
        [c for c in causes if c not in shown]


def breakdown_section(outcomes: tuple[Outcome, ...]) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Step-time breakdown"),
        Paragraph("Simulated step time by cause (held-out fit) beside the measured per-stage times. All times in "
                  "ms per step. A kernel's time goes to `compute` only when it is compute-bound, otherwise to the "
                  "bytes it streams (`weights`, `kv_cache`, `activations`)."),
        Figure("breakdown.png", plots.breakdown_png(outcomes), "Per run, as a share of its measured step time: "
               "the simulated breakdown (upper bar) and the measured per-stage compute / communication / idle "
               "(lower bar, hatched)."),
    ]
    for regime in regimes(outcomes):
        table, zero = breakdown_table(of_regime(outcomes, regime))
        blocks.append(Heading(3, regime))
        if zero:
            blocks.append(Paragraph("Simulated causes that are 0.000 ms in every run below, so not shown: "
                                    + ", ".join(f"`{c}`" for c in zero) + "."))
        blocks.append(table)
    return blocks


def timelines_section(t: Timelines | None) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Timelines: simulated and profiled")]
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
    if t.kinds:
        blocks += [
            Paragraph(f"Kernel time of `{t.key}` by kind, ms per step: the simulator with the final fit against the "
                      "profiled kernels (each kind's share of its trace's kernel time, times the simulated or the "
                      "measured step). A step time can be right with the time in the wrong kind: this is the "
                      "check. The simulator counts KV-cache writes in attention; the profile shows them as copies."),
            Table(("kind", "simulated ms", "profiled ms", "profiled / simulated"),
                  tuple((k.kind, ms(k.simulated_s), ms(k.profiled_s), "-" if k.ratio is None else f"{k.ratio:.2f}")
                        for k in t.kinds)),
        ]
    return blocks
