"""Every renderer, straight from hand-made reports (tests/builders.py): no server, no advise().

The CLI tests prove the wiring against the real Prometheus lab; these prove each format on what
no lab produces cheaply: control characters, tabs, line breaks and markup in names and reasons,
NaN and infinite rates, versions of unknown size, empty reports and every status.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any

import pytest
from rich.cells import cell_len

from retire.advisor import Report, Status
from retire.advisor.changes import Change, History
from retire.escape import has_unsafe, printable
from retire.formats import ListFormat, ReportFormat, html, render_report, render_safe_list
from retire.formats.csv import FORMULA_START
from retire.formats.tsv import tsv_refused
from tests.builders import every_status, report, row
from tests.readback import HtmlTable

# Names a label or a directory can carry, each a way to break some format or mislead its reader.
HOSTILE = (
    "esc\x1b[31mred\x1b[0m",
    "line\nbreak",
    "tab\there",
    "cr\rhere",
    "bidi\u202eevil",
    "<script>alert(1)</script>",
    "[bold red]markup[/bold red]",
    "a|b",
    "back\\slash",
    '=HYPERLINK("http://x")',
    "-1+2",
    "modèle-ünïcode",
)
SGR = re.compile(r"\x1b\[[0-9;]*m")


def md_escaped(shown: str) -> str:
    """A name as the Markdown report writes it: `\\` and `|` escaped (a cell stays one cell),
    `&` and `<` as entities and `[`, `]`, `](` escaped (no HTML, no live link where it is pasted)."""
    text = shown.replace("\\", "\\\\").replace("|", "\\|").replace("&", "&amp;").replace("<", "&lt;")
    return text.replace("[", "\\[").replace("]", "\\]").replace("](", "]\\(")


def _strict(text: str) -> Any:
    def refuse(name: str) -> object:
        raise AssertionError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _hostile_report(but: str = "") -> tuple[Report, list[dict[str, Any]]]:
    """Each hostile name (all `but` one) as a model (safe), as a version (in use) and in a reason
    (unknown)."""
    rows = []
    for n, name in enumerate(HOSTILE):
        if name == but:
            continue
        rows.append(row(name, "1", Status.SAFE, size_bytes=1000 + n))
        rows.append(row(f"m{n}", name, Status.IN_USE))
        rows.append(row(f"m{n}", "2", Status.UNKNOWN, reason=f"would be safe but {name}"))
    return report(*rows, unknown_causes=("a cause with\na line break <b>",)), rows


def _odd_numbers_report() -> Report:
    return report(
        row("nan", "1", Status.UNKNOWN, max_hourly_qps=math.nan, calls=None, hourly=(0.0, math.nan, None)),
        row("inf", "1", Status.UNKNOWN, max_hourly_qps=math.inf, hourly=(math.inf, 0.0, 1.0)),
        row("neg", "1", Status.UNKNOWN, max_hourly_qps=-math.inf, hourly=(-math.inf, None, 2.0)),
        row("nosize", "1", Status.SAFE, size_bytes=None, max_hourly_qps=None, calls=None),
        row("huge", "1", Status.IN_USE, calls=1e300, max_hourly_qps=1e12),
    )


def _human(rep: Report) -> dict[str, str]:
    """Every format a person reads, under a name for the failure message."""
    out = {
        "table": render_report(rep, ReportFormat.TABLE),
        "markdown": render_report(rep, ReportFormat.MARKDOWN),
        "html": html.render(rep, ["since last report: a line"]),
    }
    for width in (40, 80, 200):
        out[f"table@{width}"] = render_report(rep, ReportFormat.TABLE, width=width)
        out[f"table@{width}-color"] = render_report(rep, ReportFormat.TABLE, width=width, color=True)
        out[f"table@{width}-verbose"] = render_report(rep, ReportFormat.TABLE, width=width, verbose=True)
    return out


def _html_rows(text: str) -> list[list[str]]:
    parser = HtmlTable()
    parser.feed(text)
    return parser.rows


def _html_by_model(text: str) -> dict[str, dict[str, str]]:
    """Each data row as {column heading: cell text}, by model."""
    header, *body = _html_rows(text)
    return {cells[0]: dict(zip(header, cells, strict=True)) for cells in body}


def _markdown_cells(line: str) -> list[str]:
    """A Markdown table line split at its unescaped pipes (a `\\|` is text)."""
    assert line.startswith("| ") and line.endswith(" |"), line
    cells, cell, i = [], "", 1
    while i < len(line) - 1:
        c = line[i]
        if c == "\\":
            cell += line[i : i + 2]
            i += 2
            continue
        if c == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += c
        i += 1
    cells.append(cell.strip())
    return cells


def _markdown_unescape(cell: str) -> str:
    """What a Markdown reader shows: backslash escapes and the `&lt;` entity undone."""
    return re.sub(r"\\(.)", r"\1", cell).replace("&lt;", "<").replace("&amp;", "&")


# --------------------------------------------------------------------------------------------
# The dispatch


def test_formats_are_exhaustive() -> None:
    """Every member of each format enum renders (the enums come from the formats' registry, and
    test_registry.py checks each format has its renderers), and each renders differently."""
    assert {f.value for f in ReportFormat} == {"table", "json", "csv", "markdown"}
    assert {f.value for f in ListFormat} == {"tsv", "json", "csv"}
    rep = report(*every_status())
    reports = {fmt: render_report(rep, fmt) for fmt in ReportFormat}
    for fmt, text in reports.items():
        assert "alpha" in text and all(s.value in text for s in Status), fmt
    assert len(set(reports.values())) == len(ReportFormat)
    lists = {fmt: render_safe_list(rep, fmt) for fmt in ListFormat}
    for kind, text in lists.items():
        assert "/models/alpha/1" in text and "/models/alpha/2" not in text, kind
    assert len(set(lists.values())) == len(ListFormat)


def test_a_value_that_is_no_member_is_refused() -> None:
    with pytest.raises(AssertionError):
        render_report(report(), "html")  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        render_safe_list(report(), "ndjson")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# What a person reads: table, Markdown, HTML


def test_human_formats_carry_no_control_character() -> None:
    rep, _ = _hostile_report()
    for name, text in _human(rep).items():
        plain = SGR.sub("", text) if name.endswith("-color") else text
        for line in plain.split("\n"):
            assert not has_unsafe(line), (name, line)
        if not name.endswith("-color"):
            assert "\x1b" not in text, name


def test_human_formats_show_every_hostile_name_escaped() -> None:
    rep, _ = _hostile_report()
    texts = _human(rep)
    for name in HOSTILE:
        shown = printable(name)
        assert shown in texts["table"], name
        assert shown in texts["table@200"], name
        assert md_escaped(shown) in texts["markdown"], name
        assert f"would be safe but {shown}" in texts["table"], name
    assert "[bold red]markup[/bold red]" in texts["table@200-color"]  # rich markup stays text
    assert "a cause with\\na line break <b>" in texts["table"]


def test_plain_table_is_one_line_per_version_in_report_order() -> None:
    rep, rows = _hostile_report()
    lines = render_report(rep, ReportFormat.TABLE).split("\n")
    head = next(i for i, line in enumerate(lines) if line.startswith("MODEL"))
    body = lines[head + 1 : head + 1 + len(rows)]
    for line, r in zip(body, rows, strict=True):
        assert line.startswith(printable(r["model"]) + " "), line
        assert f" {printable(r['version'])} " in line and f" {r['status'].value} " in line, line
        assert line.endswith(printable(r["reason"])), line  # plain text: every reason in full
    assert lines[head + 1 + len(rows)] == ""


@pytest.mark.parametrize("width", [40, 80, 120])
def test_fitted_table_is_never_wider_than_the_terminal(width: int) -> None:
    rep, rows = _hostile_report()
    for color in (False, True):
        text = render_report(rep, ReportFormat.TABLE, width=width, color=color)
        for line in SGR.sub("", text).split("\n"):
            assert cell_len(line) <= width, (width, line)
    verbose = render_report(rep, ReportFormat.TABLE, width=width, verbose=True)
    for r in rows:  # -v: what did not fit is said in full below the table
        assert printable(r["reason"]) in verbose.replace("\n", " ") or printable(r["reason"]) in verbose


def test_markdown_table_has_one_cell_per_column_whatever_the_names() -> None:
    rep, rows = _hostile_report()
    text = render_report(rep, ReportFormat.MARKDOWN)
    table = [line for line in text.split("\n") if line.startswith("| ")]
    header, body = _markdown_cells(table[0]), table[1:]
    assert header[:3] == ["MODEL", "VERSION", "STATUS"] and header[-1] == "REASON"
    assert len(body) == len(rows)
    for line, r in zip(body, rows, strict=True):
        cells = _markdown_cells(line)
        assert len(cells) == len(header), line
        assert _markdown_unescape(cells[0]) == printable(r["model"]).strip()
        assert _markdown_unescape(cells[1]) == printable(r["version"]).strip()
        assert cells[2] == r["status"].value
        assert _markdown_unescape(cells[-1]) == printable(r["reason"])


def test_html_escapes_markup_and_keeps_one_cell_per_column() -> None:
    rep, rows = _hostile_report()
    text = html.render(rep, ["since last report: <i>new</i>"])
    assert "<script>" not in text and "<i>new</i>" not in text and "<b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    table = _html_rows(text)
    header, body = table[0], table[1:]
    assert header[:3] == ["Model", "Version", "Status"] and header[-1] == "Reason"
    assert len(body) == len(rows)
    for cells, r in zip(body, rows, strict=True):
        assert len(cells) == len(header)
        assert cells[0] == printable(r["model"]) and cells[1] == printable(r["version"])
        assert cells[2] == r["status"].value and cells[-1] == printable(r["reason"])


def test_every_status_in_every_human_format() -> None:
    rep = report(*every_status())
    for name, text in _human(rep).items():
        for status in Status:
            assert status.value in text, (name, status)
    page = html.render(rep)
    for status, (fg, bg) in html.COLOURS.items():
        assert f"color:{fg};background:{bg}" in page, status
    assert "1 safe to offload (1.0 KiB), 1 in-use, 1 protected, 1 unknown, 1 not-on-disk" in page


def test_nan_infinite_and_missing_numbers_in_human_formats() -> None:
    rep = _odd_numbers_report()
    table = render_report(rep, ReportFormat.TABLE)
    lines = {
        line.split()[0]: line
        for line in table.split("\n")
        if line[:4] in ("nan ", "inf ", "neg ", "nosi", "huge")
    }
    assert " NaN " in lines["nan"] and " +Inf " in lines["inf"] and " -Inf " in lines["neg"]
    assert "B " not in lines["nosize"] and "KiB" not in lines["nosize"]  # no size is blank, not 0 B
    assert "1e+12" in lines["huge"]
    markdown = render_report(rep, ReportFormat.MARKDOWN)
    assert "| NaN |" in markdown and "| +Inf |" in markdown and "| -Inf |" in markdown
    cells = _html_by_model(html.render(rep))
    qps = {m: c["Busiest QPS"] for m, c in cells.items()}
    assert qps == {"nan": "NaN", "inf": "+Inf", "neg": "-Inf", "nosize": "", "huge": "1e+12"}
    assert cells["nosize"]["Size"] == "" and cells["nosize"]["Calls"] == ""


def test_sparklines_show_infinite_as_full_and_nan_as_no_data() -> None:
    rep = _odd_numbers_report()
    cells = _html_by_model(html.render(rep))
    assert cells["inf"]["Traffic"] == "█▁█"  # +Inf is a doubt, never drawn as idle
    assert cells["nan"]["Traffic"] == "▁  "
    for width in (40, 80, 200):
        render_report(rep, ReportFormat.TABLE, width=width)  # shrinking odd points never fails


def test_columns_come_and_go_with_the_evidence() -> None:
    plain = report(row())
    assert "TRAFFIC" not in render_report(plain, ReportFormat.TABLE)
    assert "LOADED" not in render_report(plain, ReportFormat.MARKDOWN)
    told = report(row(hourly=(0.0, 0.0), loaded=True, loaded_from="policy"), row(version="2"))
    table = render_report(told, ReportFormat.TABLE)
    assert "TRAFFIC" in table and "LOADED" in table and " yes* " in table
    assert "Loaded" in [c for c in _html_rows(html.render(told))[0]]


def test_empty_report_in_every_format() -> None:
    rep = report()
    for fmt in ReportFormat:
        assert render_report(rep, fmt)
    assert "(no model versions on disk or in Prometheus)" in render_report(rep, ReportFormat.TABLE)
    assert "(no model versions on disk or in Prometheus)" in render_report(rep, ReportFormat.TABLE, width=80)
    assert "0 safe to offload (0 B)" in render_report(rep, ReportFormat.MARKDOWN)
    doc = _strict(render_report(rep, ReportFormat.JSON))
    assert doc["rows"] == [] and doc["summary"]["safe_bytes"] == 0
    assert render_report(rep, ReportFormat.CSV).count("\n") == 1  # the header only
    assert _html_rows(html.render(rep))[1:] == []
    assert render_safe_list(rep, ListFormat.TSV) == ""
    assert _strict(render_safe_list(rep, ListFormat.JSON)) == []
    assert render_safe_list(rep, ListFormat.CSV).count("\n") == 1


def test_since_last_lines_in_every_format() -> None:
    rep = report(*every_status())
    changes = (
        Change("x\x1b[2J", "1", "in-use", "safe", "became safe"),
        Change("alpha", "9", "safe", None, "disappeared"),
    )
    history = History("2023-11-13T22:13:20Z", changes)
    table = render_report(rep, ReportFormat.TABLE, history=history)
    assert "since last report (2023-11-13T22:13:20Z):" in table
    assert "became safe: x\\x1b[2J 1 (was in-use)" in table and "\x1b[2J" not in table
    assert "became safe: x\\x1b[2J 1 (was in-use)" in render_report(
        rep, ReportFormat.MARKDOWN, history=history
    )
    doc = _strict(render_report(rep, ReportFormat.JSON, history=history))
    assert doc["since_last"]["previous_evaluated_at"] == "2023-11-13T22:13:20Z"
    assert doc["since_last"]["changes"][0] == {
        "model": "x\x1b[2J",
        "version": "1",
        "before": "in-use",
        "after": "safe",
        "kind": "became safe",
    }
    assert render_report(rep, ReportFormat.CSV, history=history) == render_report(rep, ReportFormat.CSV)


# --------------------------------------------------------------------------------------------
# What a script reads: JSON, CSV and the safe lists


def test_json_carries_names_exactly_and_numbers_as_prometheus_spells_them() -> None:
    rep, rows = _hostile_report()
    doc = _strict(render_report(rep, ReportFormat.JSON))
    assert [(r["model"], r["version"], r["status"], r["reason"]) for r in doc["rows"]] == [
        (r["model"], r["version"], r["status"].value, r["reason"]) for r in rows
    ]
    assert doc["summary"]["unknown_causes"] == ["a cause with\na line break <b>"]
    odd = {r["model"]: r for r in _strict(render_report(_odd_numbers_report(), ReportFormat.JSON))["rows"]}
    assert odd["nan"]["max_hourly_qps"] == "NaN" and odd["nan"]["calls"] is None
    assert odd["nan"]["hourly_qps"] == [0.0, "NaN", None]
    assert odd["inf"]["max_qps"] == "+Inf" and odd["inf"]["hourly_qps"] == ["+Inf", 0.0, 1.0]
    assert odd["neg"]["max_hourly_qps"] == "-Inf" and odd["neg"]["hourly_qps"][0] == "-Inf"
    assert odd["nosize"]["size_bytes"] is None and odd["nosize"]["max_hourly_qps"] is None
    assert odd["huge"]["calls"] == int(1e300) and type(odd["huge"]["calls"]) is int
    assert "hourly_qps" not in odd["nosize"]


def test_csv_carries_names_exactly_and_defuses_formulas() -> None:
    rep, rows = _hostile_report(but="cr\rhere")  # see test_csv_quotes_a_carriage_return
    parsed = list(csv.DictReader(io.StringIO(render_report(rep, ReportFormat.CSV))))
    assert len(parsed) == len(rows)
    for got, r in zip(parsed, rows, strict=True):
        for key in ("model", "version", "reason"):
            want = r[key]
            if want.startswith(FORMULA_START):
                want = "'" + want
            assert got[key] == want, (key, got[key])
        assert got["status"] == r["status"].value
    assert any(g["model"] == '\'=HYPERLINK("http://x")' for g in parsed)
    odd = {
        r["model"]: r
        for r in csv.DictReader(io.StringIO(render_report(_odd_numbers_report(), ReportFormat.CSV)))
    }
    assert odd["nan"]["max_hourly_qps"] == "NaN" and odd["nan"]["calls"] == ""
    assert odd["nosize"]["size_bytes"] == "" and odd["nosize"]["on_disk"] == "true"
    assert odd["huge"]["calls"] == str(int(1e300))


def test_safe_lists_hold_only_safe_versions_in_report_order() -> None:
    rep = report(
        row("alpha", "1"),
        row("alpha", "2", Status.IN_USE),
        row("beta", "3", Status.UNKNOWN),
        row("beta", "4", size_bytes=None),
        *[row("gamma", str(n), s) for n, s in enumerate(Status, start=5)],
    )
    safe = [("alpha", "1"), ("beta", "4"), ("gamma", "5")]
    tsv = render_safe_list(rep, ListFormat.TSV)
    assert tsv == "".join(f"{m}\t{v}\t/models/{m}/{v}\n" for m, v in safe)
    assert [(r["model"], r["version"]) for r in _strict(render_safe_list(rep, ListFormat.JSON))] == safe
    assert _strict(render_safe_list(rep, ListFormat.JSON))[1]["size_bytes"] is None
    rows = list(csv.DictReader(io.StringIO(render_safe_list(rep, ListFormat.CSV))))
    assert [(r["model"], r["version"], r["path"]) for r in rows] == [
        (m, v, f"/models/{m}/{v}") for m, v in safe
    ]


def test_tsv_refuses_what_one_line_cannot_carry_and_says_why() -> None:
    rep, rows = _hostile_report()
    tsv = render_safe_list(rep, ListFormat.TSV)
    safe = [r for r in rows if r["status"] is Status.SAFE]
    unfit = [r for r in safe if "\\" in r["model"] or has_unsafe(r["model"])]
    assert len(unfit) == 6  # esc, line break, tab, cr, bidi, backslash
    listed = tsv.split("\n")[:-1]
    assert len(listed) == len(safe) - len(unfit)
    for line in listed:
        model, version, path = line.split("\t")
        assert not any(has_unsafe(f) or "\\" in f for f in (model, version, path)), line
        assert path == f"/models/{model}/{version}"
    refused = tsv_refused(rep)
    assert len(refused) == len(unfit)
    for why, r in zip(refused, unfit, strict=True):
        assert not has_unsafe(why) and printable(r["model"]) in why and "use --format json" in why
    names = [r["model"] for r in _strict(render_safe_list(rep, ListFormat.JSON))]
    assert names == [r["model"] for r in safe]  # JSON carries every one, exactly


def test_infinite_calls_in_the_table() -> None:
    rep = report(row("inf", "1", Status.UNKNOWN, calls=math.inf))
    assert _strict(render_report(rep, ReportFormat.JSON))["rows"][0]["calls"] == "+Inf"
    assert " +Inf " in render_report(rep, ReportFormat.TABLE)


@pytest.mark.parametrize("fmt", ["report", "safe-list"])
def test_csv_quotes_a_carriage_return(fmt: str) -> None:
    rep = report(row("cr\rhere", "1"), row("cr", "2"))
    text = render_report(rep, ReportFormat.CSV) if fmt == "report" else render_safe_list(rep, ListFormat.CSV)
    parsed = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(r["model"], r["version"], r["path"]) for r in parsed] == [
        ("cr\rhere", "1", "/models/cr\rhere/1"),
        ("cr", "2", "/models/cr/2"),
    ]
