"""The HTML part of the mailed report: a clean table, statuses in colour, reasons, bytes freed,
the window, the source and the PromQL. Every value that came from Prometheus or the file system
is escaped: a model named `<script>` stays text. Inline styles only: mail clients drop <style>.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retire.escape import printable
from retire.formats import PEOPLE, Format, MailPart, with_changes

if TYPE_CHECKING:
    from retire.advisor import Report

# By status (its text: the advisor is imported only when a report is drawn).
COLOURS = {
    "safe": ("#1b5e20", "#e8f5e9"),
    "in-use": ("#0d47a1", "#e3f2fd"),
    "protected": ("#37474f", "#eceff1"),
    "unknown": ("#8a4b00", "#fff3e0"),
    "not-on-disk": ("#6a1b9a", "#f3e5f5"),
    "unloaded": ("#424242", "#f5f5f5"),
}
CELL = "padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top"
SPARK = "font-family:monospace;letter-spacing:-1px;white-space:pre"
PAGE = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;color:#222"


def escape(text: str) -> str:
    """HTML-escaped, with control characters shown as escapes (mail clients and the text
    alternative would otherwise carry them raw)."""
    from html import escape as html_escape  # only when mail is sent: the CLI reads this module at start-up

    return html_escape(printable(text))


def _p(text: str, style: str = "") -> str:
    return f'<p style="margin:4px 0;{style}">{escape(text)}</p>'


def render(report: Report, extra_lines: list[str] | None = None) -> str:
    from retire.advisor import human_bytes
    from retire.formats.words import notes, summary_line, window_line

    h = report.header
    out = [f'<html><body style="{PAGE}">', '<h2 style="margin:0 0 8px">retire report</h2>']
    unknown = report.summary.unknown > 0
    out.append(_p(summary_line(report), "font-weight:bold;" + ("color:#8a4b00" if unknown else "")))
    out.append(_p(window_line(report), "color:#555"))
    out += [_p(n, "color:#555") for n in notes(report)]
    out += [_p(line, "color:#333;white-space:pre") for line in extra_lines or []]
    out += _table(report)
    for model, size in sorted(report.summary.safe_bytes_by_model.items()):
        out.append(_p(f"frees {human_bytes(size)} in {model}"))
    out.append(_p(f"Prometheus: {h.source}", "color:#555"))
    out.append('<p style="margin:8px 0 2px;color:#555">PromQL (busiest hour):</p>')
    promql = escape(h.queries.get("max_hourly_qps", ""))
    out.append(f'<pre style="background:#f6f8fa;padding:8px;white-space:pre-wrap">{promql}</pre>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _table(report: Report) -> list[str]:
    from retire.advisor import fmt_calls, fmt_qps, human_bytes
    from retire.formats.cells import loaded_cell, people_rows
    from retire.formats.words import sparkline

    out = ['<table style="border-collapse:collapse;margin:12px 0">']
    with_loaded = any(r.loaded_from for r in report.rows())  # shown only when someone said
    heads = [
        "Model",
        "Version",
        "Status",
        *(["Loaded"] if with_loaded else []),
        "Traffic",
        "Busiest QPS",
        "Calls",
        "Size",
        "Reason",
    ]
    out.append(
        "<tr>"
        + "".join(f'<th style="{CELL};text-align:left;background:#fafafa">{x}</th>' for x in heads)
        + "</tr>"
    )
    for r in people_rows(report):
        fg, bg = COLOURS[r.status]
        badge = f"color:{fg};background:{bg};padding:1px 6px;border-radius:3px"
        status = f'<span style="{badge}">{escape(r.status.value)}</span>'
        cells = [
            escape(r.model),
            escape(r.version),
            status,
            *([escape(loaded_cell(r))] if with_loaded else []),
            # white-space:pre keeps the blanks of hours without data, so the bars stay in time order
            f'<span style="{SPARK}">{escape(sparkline(r.hourly))}</span>',
            "" if r.max_hourly_qps is None else escape(fmt_qps(r.max_hourly_qps)),
            "" if r.calls is None else escape(fmt_calls(r.calls)),
            escape(human_bytes(r.size_bytes)),
            escape(r.reason),
        ]
        styles = [CELL + (";white-space:nowrap" if i < len(cells) - 1 else "") for i in range(len(cells))]
        out.append(
            "<tr>"
            + "".join(f'<td style="{st}">{c}</td>' for st, c in zip(styles, cells, strict=True))
            + "</tr>"
        )
    out.append("</table>")
    return out


def render_failure(error: str, source: str | None) -> str:
    """The mail sent when no report could be made: says so, and lists nothing as safe."""
    out = [
        f'<html><body style="{PAGE}">',
        '<h2 style="margin:0 0 8px;color:#b71c1c">retire could not make the report</h2>',
    ]
    out.append(_p(error, "font-weight:bold"))
    out.append(_p("No version is listed as safe to offload: without the evidence, none can be."))
    if source:
        out.append(_p(f"Prometheus: {source}", "color:#555"))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


FORMAT = Format(
    name="html",
    audience=PEOPLE,
    sparklines=True,
    changes=True,
    mail=MailPart("text/html"),  # the HTML alternative of the mailed report; no command prints it
    report=with_changes(render),
)
