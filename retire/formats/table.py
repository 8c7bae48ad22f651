"""The table, for people: fitted to the terminal, the same columns as plain aligned text otherwise.

Plain text is what cron mails and `| less` show, so it carries no escape codes, no box drawing and
every reason in full. On a terminal the table must be scannable in one screen: each version is one
line, no word in MODEL, VERSION or STATUS is ever broken, the sparkline is shortened (or left out)
rather than wrapped, reasons are shortened to the room left (in full with --verbose), and the
columns a narrow terminal has no room for are left out in a fixed order, the table saying so.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from retire.escape import printable
from retire.formats import PEOPLE, REPORT, Format, MailPart, View

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from retire.advisor import Report, Row
    from retire.formats.fitting import Layout

# By status (its text: the advisor is imported only when a table is drawn).
STYLES = {
    "safe": "bold green",
    "in-use": "cyan",
    "protected": "blue",
    "unknown": "bold yellow",
    "not-on-disk": "magenta",
    "unloaded": "dim",
}
TRAILING = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$")


def render(report: Report, view: View) -> str:
    """Plain text with every reason in full when `view.width` is None (pipes, files, mail);
    otherwise the table fitted to a terminal that many cells wide, in colour if `view.color`."""
    from retire.formats.words import since_last

    extra = since_last(view.history)
    if view.width is None:
        return _plain(report, extra)
    return _fitted(report, max(view.width, 8), view.color, extra, view.verbose)


def _plain(report: Report, extra: list[str]) -> str:
    from retire.formats.cells import cells, columns, people_rows
    from retire.formats.words import notes, summary_line, window_line

    names = columns(report)
    rows = [cells(r, "TRAFFIC" in names, "LOADED" in names) for r in people_rows(report)]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(names[:-1])]
    lines = [f"retire report: {printable(window_line(report))}"]
    lines += [f"  {printable(n)}" for n in notes(report)]
    lines += [f"  {printable(e)}" for e in extra]
    lines.append("")
    for row in [names, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    if not rows:
        lines.append("(no model versions on disk or in Prometheus)")
    lines.append("")
    lines += _freed_lines(report)
    lines.append(printable(summary_line(report)))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _freed_lines(report: Report) -> list[str]:
    from retire.advisor import human_bytes

    by_model = report.summary.safe_bytes_by_model
    lines = [f"frees {human_bytes(b)} in {m}" for m, b in sorted(by_model.items())]
    return [printable(x) for x in lines + [f"to free memory: {a}" for a in report.summary.advice]]


def _fitted(report: Report, width: int, color: bool, extra: list[str], verbose: bool) -> str:
    import io

    from rich.cells import cell_len
    from rich.console import Console
    from rich.text import Text

    from retire.formats.cells import cells, columns, people_rows
    from retire.formats.fitting import fit
    from retire.formats.words import notes, summary_line, window_line

    names = columns(report)
    report_rows = list(people_rows(report))
    with_traffic, with_loaded = "TRAFFIC" in names, "LOADED" in names
    rows = [dict(zip(names, cells(r, with_traffic, with_loaded), strict=True)) for r in report_rows]
    natural = {n: max([cell_len(n), *(cell_len(row[n]) for row in rows)]) for n in names}
    if "TRAFFIC" in natural:
        natural["TRAFFIC"] = max([0, *(len(r.hourly or ()) for r in report_rows)]) or natural["TRAFFIC"]
    layout = fit(natural, width)

    buf = io.StringIO()
    console = Console(
        file=buf,
        force_terminal=color,
        no_color=not color,
        width=width,
        highlight=False,
        emoji=False,
        markup=False,
    )
    console.print(Text(f"retire report: {printable(window_line(report))}", style="bold"))
    for n in notes(report):
        console.print(Text(f"  {printable(n)}", style="yellow" if n.startswith("warning") else "dim"))
    for e in extra:
        console.print(Text(f"  {printable(e)}"))
    console.print()
    table, shortened = _table(layout, natural, report_rows, rows)
    if report_rows:
        console.print(table)
    else:
        console.print(Text("(no model versions on disk or in Prometheus)"))
    _fit_notes(console, width, layout, natural, rows, shortened, verbose)
    console.print()
    for line in _freed_lines(report):
        console.print(Text(line))
    style = "bold yellow" if report.summary.unknown else "bold"
    console.print(Text(printable(summary_line(report)), style=style))
    # rich pads every table line to its full width; trailing blanks only make copies messy
    return "\n".join(TRAILING.sub(r"\1", line) for line in buf.getvalue().split("\n"))


def _table(
    layout: Layout, natural: dict[str, int], report_rows: list[Row], rows: list[dict[str, str]]
) -> tuple[Table, list[dict[str, str]]]:
    """The rows in the layout's columns, and the rows whose reason did not fit (as cells() spells them)."""
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    from retire.formats.cells import NUMERIC
    from retire.formats.fitting import GAP, shorten, shrink
    from retire.formats.words import sparkline

    table = Table(
        box=None, pad_edge=False, padding=(0, GAP // 2), show_edge=False, expand=False, header_style="bold"
    )
    for name, w in layout.widths.items():
        table.add_column(
            name if cell_len(name) <= w else shorten(name, w),
            justify="right" if name in NUMERIC else "left",
            width=w,
            no_wrap=w >= natural[name] or name not in ("MODEL", "VERSION", "STATUS"),
            overflow="fold",
        )
    shortened: list[dict[str, str]] = []
    for r, row in zip(report_rows, rows, strict=True):
        out: list[Text] = []
        for name, w in layout.widths.items():
            text = row[name]
            if name == "TRAFFIC":
                text = sparkline(shrink(r.hourly, layout.traffic_points)) if r.hourly else ""
            elif name == "REASON":
                text = shorten(text, w)
                if text != row[name]:
                    shortened.append(row)
            out.append(Text(text, style=STYLES[r.status] if name == "STATUS" else ""))
        table.add_row(*out)
    return table, shortened


def _fit_notes(
    console: Console,
    width: int,
    layout: Layout,
    natural: dict[str, int],
    rows: list[dict[str, str]],
    shortened: list[dict[str, str]],
    verbose: bool,
) -> None:
    """Under the table: what was left out or shortened to fit, and with --verbose the full reasons."""
    from rich.text import Text

    said = []
    if layout.left_out:
        said.append(f"{', '.join(layout.left_out)} left out")
    if "TRAFFIC" in layout.widths and layout.traffic_points < natural["TRAFFIC"]:
        steps, chars = natural["TRAFFIC"], layout.traffic_points
        said.append(f"TRAFFIC: {steps} steps in {chars} characters, each the busiest")
    if (shortened or "REASON" in layout.left_out) and not verbose:
        said.append("-v for full reasons")
    if said:
        console.print(Text(f"(to fit {width} columns: {'; '.join(said)})", style="dim"))
    if verbose and (shortened or "REASON" in layout.left_out):
        console.print()
        for row in rows if "REASON" in layout.left_out else shortened:
            console.print(Text(f"{row['MODEL']} {row['VERSION']}: {row['REASON']}"))


FORMAT = Format(
    name="table",
    audience=PEOPLE,
    sparklines=True,
    changes=True,
    terminal=True,
    commands=(REPORT,),
    mail=MailPart("text/plain"),
    report=render,
)
