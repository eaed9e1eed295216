"""The report's lease section: the fitted runs by lease, configurations repeated on several
leases, and runs of other leases set beside them (``--compare-leases``, never fitted)."""

from __future__ import annotations

from validate.crossval import Outcome
from validate.leases import LeaseComparison, lease_spreads
from validate.report.accuracy import ms, pct
from validate.report.document import Block, Heading, Paragraph, Table
from validate.summary import ErrorSummary, of_regime, regimes, summarize


def _lease_rows(outcomes: tuple[Outcome, ...]) -> list[tuple[str, ...]]:
    """Configurations measured on more than one lease: each lease's measurement beside the prediction."""
    by_config: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_config.setdefault(o.measurement.config_key, []).append(o)
    rows: list[tuple[str, ...]] = []
    for runs in sorted(by_config.values(), key=lambda r: r[0].measurement.key):
        if len({o.measurement.lease for o in runs}) < 2:
            continue
        steps = [o.measured_step_time_s for o in runs]
        rows.append((runs[0].measurement.key.split("/", 1)[-1], runs[0].measurement.regime,
                     "; ".join(f"{o.measurement.lease}: {ms(o.measured_step_time_s)}" for o in runs),
                     pct(max(steps) / min(steps) - 1.0), ms(runs[0].held_out.step_time_s)))
    return rows


def _per_lease(outcomes: tuple[Outcome, ...], regime: str) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for lease in sorted({o.measurement.lease for o in of_regime(outcomes, regime)}):
        mine = tuple(o for o in outcomes if o.measurement.lease == lease)
        s: ErrorSummary | None = summarize(mine, "held_out", regime)
        if s:
            rows.append((regime, lease, str(s.count), pct(s.mape), pct(s.max_ape)))
    return rows


def _fitted_leases(outcomes: tuple[Outcome, ...]) -> list[Block]:
    leases = sorted({o.measurement.lease for o in outcomes})
    if len(leases) < 2:
        return [Paragraph(f"Every fitted run came from one lease (`{leases[0]}`), so the held-out bands hold for "
                          "this lease only.")]
    per_lease = [row for regime in regimes(outcomes) for row in _per_lease(outcomes, regime)]
    blocks: list[Block] = [
        Paragraph(f"Runs came from {len(leases)} leases ({', '.join(f'`{x}`' for x in leases)}; a lease is the "
                  "`lease` or `boot_id` a result's environment records, else the folder of its result file). Host "
                  "launch costs vary between machines; one fitted host parameter cannot match two of them, so "
                  "the decode-eager band is as good as the leases agree."),
        Table(("regime", "lease", "runs", "held-out MAPE", "worst"), tuple(per_lease)),
    ]
    repeated = _lease_rows(outcomes)
    if repeated:
        blocks += [Paragraph("Configurations measured on more than one lease (measured ms per lease, the spread "
                             "between them, and the held-out prediction):"),
                   Table(("configuration", "regime", "measured ms by lease", "spread", "held-out ms"),
                         tuple(repeated))]
    return blocks


def _compared_leases(comparisons: tuple[LeaseComparison, ...], unmatched: tuple[str, ...]) -> list[Block]:
    if not comparisons:
        return [Heading(3, "Other leases, compared and not fitted"),
                Paragraph("No run given with `--compare-leases` matches a fitted entry: "
                          + ", ".join(f"`{k}`" for k in unmatched) + ".")]
    spreads = lease_spreads(comparisons)
    leases = sorted({s.lease for s in spreads})
    commits = {lease: sorted({c for s in spreads if s.lease == lease for c in s.commits}) for lease in leases}
    blocks: list[Block] = [
        Heading(3, "Other leases, compared and not fitted"),
        Paragraph("Runs of the same entries from other leases (" + ", ".join(
            f"`{lease}`, executor commit {', '.join(commits[lease])}" for lease in leases)
                  + "), given with `--compare-leases`. They are not fitted and not in any band above: they show "
                  "how far one entry's step time moves from lease to lease (difference: other lease against the "
                  "fitted one), and how the held-out predictions of the fitted lease score on them."),
        Table(("regime", "lease", "runs", "median difference", "largest difference", "at",
               "held-out MAPE on these runs"),
              tuple((s.regime, s.lease, str(s.runs), pct(s.median_difference), pct(s.max_difference),
                     f"`{s.worst_key}`", pct(s.held_out_mape)) for s in spreads)),
        Table(("entry", "regime", "fitted lease ms", "other lease ms", "difference", "held-out ms",
               "held-out err on the other lease"),
              tuple((c.fitted.measurement.key, c.other.regime, ms(c.fitted.measured_step_time_s),
                     f"{c.other.lease}: {ms(c.other.measured_step_time_s)}", pct(c.difference),
                     ms(c.fitted.held_out.step_time_s), pct(c.held_out_error)) for c in comparisons)),
    ]
    if unmatched:
        blocks.append(Paragraph("Runs of other leases with no fitted run of the same entry (not shown): "
                                + ", ".join(f"`{k}`" for k in unmatched) + "."))
    return blocks


def leases_section(outcomes: tuple[Outcome, ...], comparisons: tuple[LeaseComparison, ...] = (),
                   unmatched: tuple[str, ...] = ()) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Runs across machine leases"), *_fitted_leases(outcomes)]
    if comparisons or unmatched:
        blocks += _compared_leases(comparisons, unmatched)
    elif len({o.measurement.lease for o in outcomes}) < 2:
        blocks.append(Paragraph("No other lease was compared (`--compare-leases`): lease-to-lease variation is "
                                "not measured here."))
    return blocks
