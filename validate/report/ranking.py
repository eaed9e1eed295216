"""The report's rank agreement section: which plans each comparison covers, counted by kind."""

from __future__ import annotations

from validate.ranking import GroupRanking, describe_agreement
from validate.report.accuracy import pct
from validate.report.document import Block, Bullets, Heading, Paragraph, Table


def ranking_section(held_out: tuple[GroupRanking, ...], uncalibrated: tuple[GroupRanking, ...]) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Rank agreement")]
    if not held_out:
        return [*blocks, Paragraph("No group of measured experiments differs only in plan, so there is no ranking "
                                   "to compare, of any kind.")]
    rows = tuple(
        (r.group, r.kind, " vs ".join(r.plans), r.measured_best, r.predicted_best, u.predicted_best,
         pct(r.measured_margin), "yes" if r.agrees else "**no**", "yes" if r.order_agrees else "no")
        for r, u in zip(held_out, uncalibrated, strict=True)
    )
    return [
        *blocks,
        Paragraph("Groups of runs with the same model, cluster and workload, differing only in plan. A group "
                  "compares plans of one kind: the same stages, TP degrees and devices with another microbatch "
                  "count, or another layout (tensor against pipeline parallelism, other stage boundaries or "
                  "devices). Each kind is counted apart (held-out fit):"),
        Bullets(tuple(describe_agreement(held_out))),
        Paragraph("Margin: how much slower the measured runner-up is than the measured best."),
        Table(("group", "kind", "plans compared (fastest measured first)", "measured best", "held-out best",
               "uncalibrated best", "margin", "agree", "order agrees"), rows),
    ]
