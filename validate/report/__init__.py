"""The validation report: its sections (:mod:`.accuracy`, :mod:`.breakdown`, :mod:`.extrapolation`,
:mod:`.leases`, :mod:`.ranking`), the document model written as Markdown and HTML
(:mod:`.document`), the figures (:mod:`.plots`) and the headless-browser screenshot
(:mod:`.browser_view`); :mod:`.page` puts the sections together."""

from validate.report.page import HTML_NAME, MARKDOWN_NAME, ReportInput, Timelines, build_blocks, write_report

__all__ = ["HTML_NAME", "MARKDOWN_NAME", "ReportInput", "Timelines", "build_blocks", "write_report"]
