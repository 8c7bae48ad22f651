"""The human report: a rich table on a terminal, the same columns as plain aligned text otherwise.

Plain text is what cron mails and `| less` show, so it carries no escape codes and no box drawing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retire.advisor import Status, fmt_calls, fmt_qps
from retire.formats.words import human_bytes, notes, sparkline, summary_line, window_line

if TYPE_CHECKING:
    from retire.advisor import Report, Row

COLUMNS = ("MODEL", "VERSION", "STATUS", "TRAFFIC", "BUSIEST QPS", "CALLS", "SIZE", "REASON")
STYLES = {
    Status.SAFE: "bold green",
    Status.IN_USE: "cyan",
    Status.PROTECTED: "blue",
    Status.UNKNOWN: "bold yellow",
    Status.NOT_ON_DISK: "magenta",
}


def columns(report: Report) -> tuple[str, ...]:
    """The TRAFFIC sparkline column only when the hourly series were fetched."""
    has_hourly = any(r.hourly is not None for r in report.rows())
    return COLUMNS if has_hourly else tuple(c for c in COLUMNS if c != "TRAFFIC")


def cells(r: Row, with_traffic: bool = True) -> tuple[str, ...]:
    traffic = (sparkline(r.hourly),) if with_traffic else ()
    return (
        r.model,
        r.version,
        r.status.value,
        *traffic,
        "" if r.max_hourly_qps is None else fmt_qps(r.max_hourly_qps),
        "" if r.calls is None else fmt_calls(r.calls),
        human_bytes(r.size_bytes),
        r.reason,
    )


def render(report: Report, *, color: bool, width: int, extra: list[str] | None = None) -> str:
    return _rich(report, width, extra or []) if color else _plain(report, extra or [])


def _plain(report: Report, extra: list[str]) -> str:
    names = columns(report)
    rows = [cells(r, "TRAFFIC" in names) for r in report.rows()]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(names[:-1])]
    lines = [f"retire report: {window_line(report)}"]
    lines += [f"  {n}" for n in notes(report)]
    lines += [f"  {e}" for e in extra]
    lines.append("")
    for row in [names, *rows]:
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


def _rich(report: Report, width: int, extra: list[str]) -> str:
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"retire report: {window_line(report)}", title_justify="left", expand=False)
    names = columns(report)
    for name in names:
        table.add_column(name, justify="right" if name in ("BUSIEST QPS", "CALLS", "SIZE") else "left",
                         overflow="fold")  # fmt: skip
    for r in report.rows():
        c = cells(r, "TRAFFIC" in names)
        table.add_row(c[0], c[1], Text(c[2], style=STYLES[r.status]), *c[3:])
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=width, highlight=False)
    for n in notes(report):
        console.print(Text(n, style="yellow" if n.startswith("warning") else "dim"))
    for e in extra:
        console.print(Text(e))
    console.print(table)
    for line in _freed_lines(report):
        console.print(line)
    style = "bold yellow" if report.summary.unknown else "bold"
    console.print(Text(summary_line(report), style=style))
    return buf.getvalue()
