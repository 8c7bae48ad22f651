"""A Markdown report, for tickets, wikis and pull requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retire.formats.table import COLUMNS, cells
from retire.formats.words import notes, summary_line, window_line

if TYPE_CHECKING:
    from retire.advisor import Report


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render(report: Report) -> str:
    lines = ["# retire report", "", window_line(report), ""]
    lines += [f"- {_escape(n)}" for n in notes(report)]
    lines += ["", f"**{_escape(summary_line(report))}**", ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append(
        "|" + "|".join("---:" if c in ("BUSIEST QPS", "CALLS", "SIZE") else "---" for c in COLUMNS) + "|"
    )
    for r in report.rows():
        lines.append("| " + " | ".join(_escape(c) for c in cells(r)) + " |")
    lines += [
        "",
        "PromQL (busiest hour):",
        "",
        "```promql",
        report.header.queries.get("max_hourly_qps", ""),
        "```",
        "",
    ]
    return "\n".join(lines)
