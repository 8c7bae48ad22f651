"""Output formats: one renderer per format, each a pure function of the Report returning text.

Writing the text (stdout, or a file atomically) is the CLI's job, not the renderers'.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, assert_never

if TYPE_CHECKING:
    from retire.advisor import Report
    from retire.advisor.changes import History


class ReportFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MARKDOWN = "markdown"


class ListFormat(StrEnum):
    TSV = "tsv"
    JSON = "json"
    CSV = "csv"


def render_report(
    report: Report,
    fmt: ReportFormat,
    *,
    color: bool = False,
    width: int | None = None,
    verbose: bool = False,
    history: History | None = None,
) -> str:
    """`history` (--since-last) adds a "since last report" section to the human formats and a
    `changes` list to JSON; CSV stays one row per version. `width` fits the table to a terminal
    (None: plain text, every reason in full, for pipes, files and mail)."""
    from retire.formats import markdown, structured, table
    from retire.formats.words import since_last

    extra = since_last(history) if history is not None else []
    if fmt is ReportFormat.TABLE:
        return table.render(report, color=color, width=width, extra=extra, verbose=verbose)
    if fmt is ReportFormat.JSON:
        return structured.report_json(report, history)
    if fmt is ReportFormat.CSV:
        return structured.report_csv(report)
    if fmt is ReportFormat.MARKDOWN:
        return markdown.render(report, extra)
    assert_never(fmt)  # mypy fails here when a ReportFormat member has no branch above


def render_safe_list(report: Report, fmt: ListFormat) -> str:
    from retire.formats import structured

    if fmt is ListFormat.TSV:
        return structured.safe_tsv(report)
    if fmt is ListFormat.JSON:
        return structured.safe_json(report)
    if fmt is ListFormat.CSV:
        return structured.safe_csv(report)
    assert_never(fmt)  # likewise for ListFormat
