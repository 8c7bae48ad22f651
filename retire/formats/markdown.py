"""A Markdown report, for tickets, wikis and pull requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retire.escape import printable
from retire.formats import PEOPLE, REPORT, Format, with_changes

if TYPE_CHECKING:
    from retire.advisor import Report


def _escape(text: str) -> str:
    """Names come from disk and Prometheus: shown as text wherever the report is pasted. A pipe
    would split the cell; `<` would start HTML or an autolink (`&` an entity), `[`...`](` a link."""
    text = (
        printable(text).replace("\\", "\\\\").replace("|", "\\|").replace("&", "&amp;").replace("<", "&lt;")
    )
    return text.replace("[", "\\[").replace("]", "\\]").replace("](", "]\\(")


def render(report: Report, extra: list[str] | None = None) -> str:
    from retire.formats.cells import NUMERIC, cells, columns, people_rows
    from retire.formats.words import notes, summary_line, window_line

    lines = ["# retire report", "", _escape(window_line(report)), ""]
    lines += [f"- {_escape(n)}" for n in notes(report)]
    if extra:
        lines += ["", "```", *map(printable, extra), "```"]
    lines += ["", f"**{_escape(summary_line(report))}**", ""]
    names = columns(report)
    lines.append("| " + " | ".join(names) + " |")
    lines.append("|" + "|".join("---:" if c in NUMERIC else "---" for c in names) + "|")
    for r in people_rows(report):
        row = cells(r, "TRAFFIC" in names, "LOADED" in names)
        lines.append("| " + " | ".join(_escape(c) for c in row) + " |")
    lines += [
        "",
        "PromQL (busiest hour):",
        "",
        "```promql",
        printable(report.header.queries.get("max_hourly_qps", "")),
        "```",
        "",
    ]
    return "\n".join(lines)


FORMAT = Format(
    name="markdown",
    audience=PEOPLE,
    sparklines=True,
    changes=True,
    commands=(REPORT,),
    report=with_changes(render),
)
