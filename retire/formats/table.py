"""The human report: a rich table on a terminal, the same columns as plain aligned text otherwise.

Plain text is what cron mails and `| less` show, so it carries no escape codes and no box drawing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retire.advisor import Status, fmt_calls, fmt_qps
from retire.formats.words import human_bytes, notes, summary_line, window_line

if TYPE_CHECKING:
    from retire.advisor import Report, Row

COLUMNS = ("MODEL", "VERSION", "STATUS", "BUSIEST QPS", "CALLS", "SIZE", "REASON")
STYLES = {
    Status.SAFE: "bold green",
    Status.IN_USE: "cyan",
    Status.PROTECTED: "blue",
    Status.UNKNOWN: "bold yellow",
    Status.NOT_ON_DISK: "magenta",
}


def cells(r: Row) -> tuple[str, ...]:
    return (
        r.model,
        r.version,
        r.status.value,
        "" if r.max_hourly_qps is None else fmt_qps(r.max_hourly_qps),
        "" if r.calls is None else fmt_calls(r.calls),
        human_bytes(r.size_bytes),
        r.reason,
    )


def render(report: Report, *, color: bool, width: int) -> str:
    return _rich(report, width) if color else _plain(report)


def _plain(report: Report) -> str:
    rows = [cells(r) for r in report.rows()]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(COLUMNS[:-1])]
    lines = [f"retire report: {window_line(report)}"]
    lines += [f"  {n}" for n in notes(report)]
    lines.append("")
    for row in [COLUMNS, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    if not rows:
        lines.append("(no model versions on disk or in Prometheus)")
    lines.append("")
    lines += _freed_lines(report)
    lines.append(summary_line(report))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _freed_lines(report: Report) -> list[str]:
    by_model = report.summary.safe_bytes_by_model
    if not by_model:
        return []
    return [f"frees {human_bytes(b)} in {m}" for m, b in sorted(by_model.items())]


def _rich(report: Report, width: int) -> str:
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"retire report: {window_line(report)}", title_justify="left", expand=False)
    for name in COLUMNS:
        table.add_column(name, justify="right" if name in ("BUSIEST QPS", "CALLS", "SIZE") else "left",
                         overflow="fold")  # fmt: skip
    for r in report.rows():
        c = cells(r)
        table.add_row(c[0], c[1], Text(c[2], style=STYLES[r.status]), *c[3:])
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=width, highlight=False)
    for n in notes(report):
        console.print(Text(n, style="yellow" if n.startswith("warning") else "dim"))
    console.print(table)
    for line in _freed_lines(report):
        console.print(line)
    style = "bold yellow" if report.summary.unknown else "bold"
    console.print(Text(summary_line(report), style=style))
    return buf.getvalue()
